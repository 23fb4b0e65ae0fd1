//! Polling rumqttc's event loop from a `select!` without ever cancelling a poll halfway.
//!
//! `EventLoop::poll` is not cancel-safe: it may have taken a request (an ack, a publish) from
//! its channel and not written it yet. A client that also waits on other things keeps one
//! [`PollFuture`] alive across `select!` rounds; the future owns the event loop and gives it
//! back with the event.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rumqttc::{ConnectionError, Event, EventLoop};

/// One poll in progress: resolves to the event loop and what the poll returned.
pub type PollFuture =
    Pin<Box<dyn Future<Output = (EventLoop, Result<Event, ConnectionError>)> + Send>>;

/// One `EventLoop::poll`, after an optional delay (the reconnection backoff).
pub fn next_poll(mut eventloop: EventLoop, delay: Option<Duration>) -> PollFuture {
    Box::pin(async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let r = eventloop.poll().await;
        (eventloop, r)
    })
}
