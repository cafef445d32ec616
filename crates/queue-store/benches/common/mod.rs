//! Set-up shared by the benches: a service over a store that waits a minute, and a
//! way to hold until a call is really waiting.

use std::sync::Arc;

use queue_core::{Service, ServiceOptions, Settings, Store};
use queue_store::BlockingPool;

/// A service over `store` whose calls wait up to 60 s, as the server runs it.
pub(crate) fn waiting_service(store: Arc<dyn Store>) -> Service {
    Service::builder(store)
        .offload(Arc::new(BlockingPool))
        .options(ServiceOptions {
            defaults: Settings {
                default_wait_seconds: 60,
                ..Settings::default()
            },
            ..ServiceOptions::default()
        })
        .build()
        .expect("build the bench service")
}

/// Returns once the most recently seen agent has a call in flight.
pub(crate) async fn until_a_call_waits(service: &Service) {
    loop {
        let agents = service.agents().await.expect("read agents");
        if agents.first().is_some_and(|a| a.waiting_until.is_some()) {
            return;
        }
        tokio::task::yield_now().await;
    }
}
