"""Prints the WM_CLASS instance name of every top-level window titled "Poussr" on $DISPLAY, one a line: what
a desktop matches against a launcher's StartupWMClass to show the window under that launcher's icon."""

from Xlib import display

d = display.Display()
todo = [d.screen().root]
while todo:
    w = todo.pop()
    try:
        if w.get_wm_name() == "Poussr":
            wm_class = w.get_wm_class()
            print(wm_class[0] if wm_class else "")
        todo.extend(w.query_tree().children)
    except Exception:  # a window that went away while walking the tree
        pass
d.close()
