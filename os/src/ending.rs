//! How a run is asked to end, whatever the platform says it with.
//!
//! Each platform has its own ways: SIGINT and SIGTERM on Unix; on Windows a console's Ctrl-C and Ctrl-Break,
//! the console window being closed, the user logging off, the system shutting down (console control
//! events), a service's stop and shutdown controls, and `WM_ENDSESSION` for a windowed program. They all
//! end one [`Ending`], which the hub's server waits on: the first reason wins, and clients are then closed
//! with 4200 so that they reconnect, whichever way the end came.
//!
//! The sources are behind the [`EndSource`] trait, so the forwarding that Windows uses is the same code the
//! tests drive on any platform with channels standing in for the console events.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

/// Why the run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Ctrl-C in the terminal or console (SIGINT, `CTRL_C_EVENT`), or Ctrl-Break on Windows.
    Interrupt,
    /// SIGTERM: a service manager, `kill`, or a logout on Linux.
    Terminate,
    /// Windows: the console window was closed (`CTRL_CLOSE_EVENT`).
    ConsoleClose,
    /// Windows: the user is logging off (`CTRL_LOGOFF_EVENT`, or `WM_ENDSESSION` for a windowed program).
    Logoff,
    /// Windows: the system is shutting down or restarting (`CTRL_SHUTDOWN_EVENT`, the service `SHUTDOWN`
    /// and `PRESHUTDOWN` controls, or `WM_ENDSESSION`).
    Shutdown,
    /// Windows' service control manager asked the service to stop (`poussr service stop`, `sc stop`).
    ServiceStop,
    /// The operator chose Quit.
    Quit,
}

impl EndReason {
    /// What happened, for the log line that says why the hub is shutting down.
    pub fn describe(self) -> &'static str {
        match self {
            EndReason::Interrupt => "interrupted (Ctrl-C)",
            EndReason::Terminate => "asked to terminate (SIGTERM)",
            EndReason::ConsoleClose => "its console window was closed",
            EndReason::Logoff => "the user is logging off",
            EndReason::Shutdown => "the system is shutting down",
            EndReason::ServiceStop => "the service was stopped",
            EndReason::Quit => "the operator chose Quit",
        }
    }
}

/// The end of a run: ended once, by the first of its sources, and awaited by any number of tasks.
/// Cheap to clone; every clone is the same ending.
#[derive(Clone, Debug)]
pub struct Ending {
    state: Arc<watch::Sender<Option<EndReason>>>,
}

impl Default for Ending {
    fn default() -> Self {
        Self::new()
    }
}

impl Ending {
    /// A run that has not ended.
    pub fn new() -> Self {
        Self { state: Arc::new(watch::channel(None).0) }
    }

    /// Ends the run for `reason`. Returns whether this call ended it: the first reason wins and later
    /// ones change nothing.
    pub fn end(&self, reason: EndReason) -> bool {
        let mut first = false;
        self.state.send_if_modified(|state| {
            first = state.is_none();
            if first {
                *state = Some(reason);
            }
            first
        });
        first
    }

    /// Why the run ended, if it has.
    pub fn reason(&self) -> Option<EndReason> {
        *self.state.borrow()
    }

    /// Resolves with the reason once the run has ended (at once if it already has).
    pub fn ended(&self) -> impl Future<Output = EndReason> + Send + 'static {
        let mut seen = self.state.subscribe();
        async move {
            // The sender lives as long as this receiver's `Ending` clones do; `changed` only fails once
            // every one of them is gone, and then nothing can end the run any more.
            let reason = seen.wait_for(Option::is_some).await.ok().and_then(|reason| *reason);
            match reason {
                Some(reason) => reason,
                None => std::future::pending().await,
            }
        }
    }

    /// Ends the run when one of `sources` first speaks, with that source's reason. Each source is watched by
    /// a task of the current tokio runtime (so this must be called inside one); the sources' OS handlers
    /// were installed when they were made, so nothing that happens after this call is missed.
    pub fn forward(&self, sources: Sources) {
        for (reason, mut source) in sources {
            let ending = self.clone();
            tokio::spawn(async move {
                if source.next().await.is_some() {
                    ending.end(reason);
                }
            });
        }
    }

    /// Ends the run when this operating system asks a console program to end (see [`os_sources`]).
    pub fn listen_to_os(&self) -> std::io::Result<()> {
        self.forward(os_sources()?);
        Ok(())
    }
}

/// Ways of being told to end, each with the reason it stands for.
pub type Sources = Vec<(EndReason, Box<dyn EndSource>)>;

/// One way of being told to end: a signal, a console event, a channel.
pub trait EndSource: Send + 'static {
    /// Waits for the next notification; `None` once there can be none.
    fn next(&mut self) -> Pin<Box<dyn Future<Output = Option<()>> + Send + '_>>;
}

impl EndSource for mpsc::Receiver<()> {
    fn next(&mut self) -> Pin<Box<dyn Future<Output = Option<()>> + Send + '_>> {
        Box::pin(self.recv())
    }
}

#[cfg(unix)]
impl EndSource for tokio::signal::unix::Signal {
    fn next(&mut self) -> Pin<Box<dyn Future<Output = Option<()>> + Send + '_>> {
        Box::pin(self.recv())
    }
}

#[cfg(windows)]
macro_rules! console_event_source {
    ($($kind:ident),*) => {$(
        impl EndSource for tokio::signal::windows::$kind {
            fn next(&mut self) -> Pin<Box<dyn Future<Output = Option<()>> + Send + '_>> {
                Box::pin(self.recv())
            }
        }
    )*};
}

#[cfg(windows)]
console_event_source!(CtrlC, CtrlBreak, CtrlClose, CtrlLogoff, CtrlShutdown);

/// How this operating system asks a console program to end, each with its reason; the handlers are
/// installed now. Unix: SIGINT and SIGTERM. Windows: Ctrl-C, Ctrl-Break, the console closed, logoff and
/// shutdown (as console events, and as `WM_ENDSESSION` to a hidden window: see [`crate::session`]). (Windows gives a console program about 5 seconds after the last three, and tokio's handler
/// keeps the process alive for that long, so the hub can close its clients with 4200.)
pub fn os_sources() -> std::io::Result<Sources> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(vec![
            (EndReason::Interrupt, Box::new(signal(SignalKind::interrupt())?)),
            (EndReason::Terminate, Box::new(signal(SignalKind::terminate())?)),
        ])
    }
    #[cfg(windows)]
    {
        use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close, ctrl_logoff, ctrl_shutdown};
        let mut sources: Sources = vec![
            (EndReason::Interrupt, Box::new(ctrl_c()?)),
            (EndReason::Interrupt, Box::new(ctrl_break()?)),
            (EndReason::ConsoleClose, Box::new(ctrl_close()?)),
            (EndReason::Logoff, Box::new(ctrl_logoff()?)),
            (EndReason::Shutdown, Box::new(ctrl_shutdown()?)),
        ];
        // A program that has loaded user32 (through the shell, as poussr.exe has) gets no logoff or shutdown
        // console event: it hears them as WM_ENDSESSION, in a hidden window. Without a window station to make
        // it in, the console events are all there is.
        match crate::session::end_session_sources() {
            Ok(more) => sources.extend(more),
            Err(e) => {
                tracing::warn!("a logoff or shutdown will not close clients with 4200: no window to hear it ({e})")
            }
        }
        Ok(sources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Console events stood in for by channels: what Windows' ctrl_close, ctrl_logoff and ctrl_shutdown
    /// feed into, through the same forwarding.
    fn sources(reasons: &[EndReason]) -> (Vec<mpsc::Sender<()>>, Sources) {
        reasons
            .iter()
            .map(|&reason| {
                let (tx, rx) = mpsc::channel(1);
                (tx, (reason, Box::new(rx) as Box<dyn EndSource>))
            })
            .unzip()
    }

    #[tokio::test]
    async fn a_logoff_ends_the_run_with_its_reason() {
        let ending = Ending::new();
        let reasons = [EndReason::Interrupt, EndReason::ConsoleClose, EndReason::Logoff, EndReason::Shutdown];
        let (senders, sources) = sources(&reasons);
        ending.forward(sources);
        let waiter = tokio::spawn(ending.ended());
        assert_eq!(ending.reason(), None);
        senders[2].send(()).await.unwrap();
        assert_eq!(waiter.await.unwrap(), EndReason::Logoff);
        assert_eq!(ending.reason(), Some(EndReason::Logoff));
    }

    #[tokio::test]
    async fn the_first_reason_wins_and_later_ones_change_nothing() {
        let ending = Ending::new();
        assert!(ending.end(EndReason::ConsoleClose));
        assert!(!ending.end(EndReason::Shutdown));
        assert!(!ending.end(EndReason::ServiceStop));
        assert_eq!(ending.ended().await, EndReason::ConsoleClose);
        // A waiter that comes after the end resolves at once, with the same reason.
        assert_eq!(ending.clone().ended().await, EndReason::ConsoleClose);
    }

    #[tokio::test]
    async fn a_source_that_closes_without_speaking_ends_nothing() {
        let ending = Ending::new();
        let (mut senders, sources) = sources(&[EndReason::Shutdown, EndReason::Interrupt]);
        ending.forward(sources);
        drop(senders.remove(0)); // the shutdown source goes away silently
        senders[0].send(()).await.unwrap();
        assert_eq!(ending.ended().await, EndReason::Interrupt);
    }

    #[test]
    fn every_reason_says_what_happened() {
        let all = [
            EndReason::Interrupt,
            EndReason::Terminate,
            EndReason::ConsoleClose,
            EndReason::Logoff,
            EndReason::Shutdown,
            EndReason::ServiceStop,
            EndReason::Quit,
        ];
        let texts: std::collections::HashSet<_> = all.iter().map(|r| r.describe()).collect();
        assert_eq!(texts.len(), all.len(), "each reason reads differently");
    }

    #[tokio::test]
    async fn the_os_handlers_install() {
        // The real handlers of this platform (signals here, console events in the Windows build under Wine).
        let sources = os_sources().expect("the OS end handlers install");
        let reasons: std::collections::HashSet<_> = sources.iter().map(|(reason, _)| *reason).collect();
        let expected: &[EndReason] = if cfg!(windows) {
            &[EndReason::Interrupt, EndReason::ConsoleClose, EndReason::Logoff, EndReason::Shutdown]
        } else {
            &[EndReason::Interrupt, EndReason::Terminate]
        };
        assert_eq!(reasons, expected.iter().copied().collect(), "every way this OS asks a program to end");
    }
}
