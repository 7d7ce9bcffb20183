//! Counting what a wiremock server is asked, by endpoint, for the
//! benchmarks' mocks (`examples/bench_release.rs`, `examples/soak.rs`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wiremock::{Request, Respond, ResponseTemplate};

/// Requests a mock received, by endpoint.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl Calls {
    pub fn add(&self, endpoint: &'static str) {
        *self.lock().entry(endpoint).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, u64>> {
        // Nothing panics while holding it; a poisoned map is still right.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts each request to one endpoint and answers with a fixed response.
pub struct Counted {
    pub endpoint: &'static str,
    pub calls: Calls,
    pub response: ResponseTemplate,
}

impl Respond for Counted {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.calls.add(self.endpoint);
        self.response.clone()
    }
}
