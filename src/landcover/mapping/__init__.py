"""Full-scene maps.

The sliding-window engine (:mod:`.engine`, takes any model kind's scorer), the map
writer (:mod:`.writer`) and the scene/area entry points (:mod:`.scene`).
"""
