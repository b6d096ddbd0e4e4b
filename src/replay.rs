//! Recordings: placeholder, filled in by the replay change.
