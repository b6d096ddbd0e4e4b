//! The console journal: every monitor event of a journaled kind, kept on disk within bounds. (Written by
//! the journal change; this placeholder keeps the module tree whole.)
