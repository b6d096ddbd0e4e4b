"""Closes every top-level window titled "Poussr" on $DISPLAY as a window manager's close button does: a
WM_DELETE_WINDOW message (the app decides what closing means). Prints how many windows it asked."""

from Xlib import X, display, protocol

d = display.Display()
root = d.screen().root
wm_protocols = d.intern_atom("WM_PROTOCOLS")
wm_delete = d.intern_atom("WM_DELETE_WINDOW")
asked = 0
todo = [root]
while todo:
    w = todo.pop()
    try:
        if w.get_wm_name() == "Poussr":
            w.send_event(protocol.event.ClientMessage(window=w, client_type=wm_protocols,
                                                      data=(32, [wm_delete, X.CurrentTime, 0, 0, 0])),
                         event_mask=X.NoEventMask)
            asked += 1
        todo.extend(w.query_tree().children)
    except Exception:  # a window that went away while walking the tree
        pass
d.flush()
d.close()
print(asked)
