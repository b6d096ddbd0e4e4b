//! The baseline: the smallest tokio-tungstenite broadcast server that fans out the same frames as the hub.
//! It has no protocol and no bookkeeping: every WebSocket is a subscriber, except one opened on
//! `/publish`, whose text frames are sent verbatim to every subscriber, or on `/publish-acked`, which also
//! answers each frame with `ok` once it is handed to the subscribers (so a publisher can wait for each
//! answer, as a Pusher SDK waits for the HTTP API's). It stands in for what this machine
//! can do at all, so the hub's figures are read as ratios against it.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// Frames a subscriber may fall behind by before it is dropped (the hub's default send queue).
const QUEUE: usize = 1024;

/// Serves until the process ends.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let (tx, _) = broadcast::channel::<tokio_tungstenite::tungstenite::Utf8Bytes>(QUEUE);
    let tx = Arc::new(tx);
    loop {
        let (stream, _) = listener.accept().await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = connection(stream, tx).await;
        });
    }
}

async fn connection(
    stream: TcpStream,
    tx: Arc<broadcast::Sender<tokio_tungstenite::tungstenite::Utf8Bytes>>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    stream.set_nodelay(true).ok();
    // Subscribed before the handshake answers, so a client that sees the handshake misses nothing.
    let mut rx = tx.subscribe();
    let mut path = String::new();
    // The callback's signature is tungstenite's; its large error type is not ours to change.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, res: Response| {
        path = req.uri().path().to_owned();
        Ok(res)
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, callback).await?;
    let (mut sink, mut stream) = ws.split();
    if path == "/publish" || path == "/publish-acked" {
        let acked = path == "/publish-acked";
        while let Some(message) = stream.next().await {
            if let Message::Text(frame) = message? {
                let _ = tx.send(frame);
                if acked {
                    sink.send(Message::text("ok")).await?;
                }
            }
        }
        return Ok(());
    }
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(frame) => {
                    sink.feed(Message::Text(frame)).await?;
                    // Whatever else is ready goes out with the same flush.
                    while let Ok(frame) = rx.try_recv() {
                        sink.feed(Message::Text(frame)).await?;
                    }
                    sink.flush().await?;
                }
                // Fell behind by a whole queue: dropped, as the hub closes a slow consumer.
                Err(_) => return Ok(()),
            },
            incoming = stream.next() => match incoming {
                Some(Ok(_)) => {}
                _ => return Ok(()),
            },
        }
    }
}
