"""Desktop app (PySide6): ``landmark-finder gui [INDEX]`` or ``landmark_finder.gui.launch.run()``.

Modules: ``app`` (the main window, a thin shell over :class:`~landmark_finder.Recognizer`),
``worker`` (library calls off the UI thread), ``mapview`` (the offline map panel),
``indexdialog`` (building an index from a gallery folder), ``widgets`` (photo view, conversions).
"""
