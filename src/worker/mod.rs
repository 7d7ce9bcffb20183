//! Background work: the inbox worker turns stored deliveries into events
//! and hands them to an [`EventHandler`] (the [`Reactor`] in production),
//! which enqueues [`jobs`]; [`deployments`] records what CD reports and
//! enqueues its jobs; the [`Dispatcher`] runs those against the providers
//! and registries; [`backoff`] spaces out retries; [`recovery`] asks GitHub
//! to redeliver App webhook deliveries portcall never stored.

pub mod backoff;
pub mod deployments;
pub mod dispatcher;
pub mod handler;
pub mod inbox;
pub mod jobs;
pub mod leases;
pub mod reactor;
pub mod recovery;

pub use dispatcher::{Dispatcher, Outbox};
pub use handler::{DeliveryContext, EventHandler, HandlerError, Outcome, Recorder};
pub use inbox::InboxWorker;
pub use reactor::Reactor;
