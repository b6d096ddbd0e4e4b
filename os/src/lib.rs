//! What differs between operating systems for Poussr, in one small crate that builds and tests quickly for
//! every target (its tests also run as a Windows program under Wine: see scripts/wine.sh).
//!
//! | module | role |
//! |---|---|
//! | [`ending`] | how a run is asked to end: Ctrl-C, SIGTERM, a console closed, a logoff, a shutdown, a service stop. One [`Ending`] that the headless hub, the service and the desktop app all wait on, so each ends the same way: clients are closed with 4200 and reconnect |
//! | [`service`] | `poussr service install\|uninstall\|start\|stop`: the plan (name, command line, account, data folder) and the answers to the service manager's controls, as plain functions testable anywhere |
//! | `scm` (Windows only) | the same, carried out through Windows' service control manager |
//! | `session` (Windows only) | a hidden window that hears a logoff or shutdown (`WM_ENDSESSION`), which Windows does not send a console program that uses the shell as a console event |
//!
//! The Windows-only code is kept to the calls into Windows; what it decides is in plain functions and
//! traits that the Linux tests exercise too.

pub mod ending;
pub mod service;

#[cfg(windows)]
pub mod scm;
#[cfg(windows)]
pub mod session;

pub use ending::{EndReason, Ending};
