//! Background work: the inbox worker turns stored deliveries into events
//! and hands them to an [`EventHandler`]; [`backoff`] spaces out retries.

pub mod backoff;
pub mod handler;
pub mod inbox;

pub use handler::{DeliveryContext, EventHandler, HandlerError, Outcome, Recorder};
pub use inbox::InboxWorker;
