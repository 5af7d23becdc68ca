# Modules register themselves on import; add one import line per module.
