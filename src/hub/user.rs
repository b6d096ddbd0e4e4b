//! Signed-in users (`pusher:signin`): which connections are which user, for `#server-to-user-` channels
//! and for the HTTP API's `terminate_connections`.

use std::collections::HashMap;
use std::sync::Arc;

use super::{App, Connection, Hub, lock};
use crate::monitor::{MonitorEvent, now_ms};
use crate::protocol::CloseCode;

/// An app's signed-in users, each with its connections by number.
pub(super) type Users = HashMap<Arc<str>, HashMap<u64, Arc<Connection>>>;

/// Why a sign-in was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigninError {
    /// The connection signed in before, as someone else.
    #[error("this connection is already signed in as {0:?}")]
    AlreadySignedIn(String),
}

impl Hub {
    /// Records that `conn` signed in as `user_id` (the caller has checked the signature). Signing in again
    /// as the same user is harmless.
    pub fn sign_in(&self, conn: &Arc<Connection>, user_id: &str) -> Result<(), SigninError> {
        let user: Arc<str> = Arc::from(user_id);
        let current = conn.user_id.get_or_init(|| user.clone());
        if **current != *user_id {
            return Err(SigninError::AlreadySignedIn(current.to_string()));
        }
        lock(&conn.app.users).entry(user.clone()).or_default().insert(conn.number, conn.clone());
        self.shared.monitor.emit(|| MonitorEvent::SignedIn {
            at_ms: now_ms(),
            socket_id: conn.socket_id.clone(),
            user_id: user,
        });
        Ok(())
    }

    /// Forgets a closing connection's sign-in.
    pub(super) fn forget_user_connection(&self, conn: &Connection) {
        let Some(user) = conn.user_id() else { return };
        let mut users = lock(&conn.app.users);
        if let Some(conns) = users.get_mut(user) {
            conns.remove(&conn.number);
            if conns.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Closes every connection signed in as `user_id` with 4009, on every hub of the cluster. Returns how
    /// many there were on this hub.
    pub fn terminate_user(&self, app: &App, user_id: &str) -> usize {
        self.shared.adapter.terminate_user(app, user_id);
        self.terminate_local_user(app, user_id)
    }

    /// Closes `user_id`'s connections on this hub only; returns how many.
    pub fn terminate_local_user(&self, app: &App, user_id: &str) -> usize {
        let conns: Vec<Arc<Connection>> =
            lock(&app.users).get(user_id).map(|c| c.values().cloned().collect()).unwrap_or_default();
        for conn in &conns {
            conn.kick(CloseCode::Terminated);
        }
        conns.len()
    }
}
