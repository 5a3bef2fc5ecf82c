//! A client-side limit on the operator's write requests, so that converging many objects at once
//! leaves the API server room for everyone else (people's `kubectl apply`, other controllers).
//!
//! Reads come from the caches and watches are long-lived, so writes are what the operator sends
//! in bursts: every request that is not a GET, HEAD or OPTIONS waits for a slot of a token
//! bucket (the generic cell rate algorithm: a steady `rate` per second, `burst` at once after a
//! quiet spell). Slots are handed out in arrival order, so no pass starves. Leader election uses
//! a client of its own, outside this limit: a Lease renewal never queues behind a rollout. On
//! shutdown the limit is lifted ([`Limiter::open`]), so the passes still running finish within
//! the grace period and the Lease is handed over in time.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use http::{Method, Request};
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// A token bucket handing out send times.
#[derive(Debug)]
pub struct Limiter {
    /// Time between two writes at the steady rate.
    period: Duration,
    /// How far ahead of the steady rate a burst may run: `(burst - 1) × period`.
    tolerance: Duration,
    /// The theoretical arrival time of the next write at the steady rate.
    next: Mutex<Option<Instant>>,
    /// Seconds writes spent waiting, for the metric.
    waited: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Set once the limit is lifted; waiters are woken through `lifted`.
    open: std::sync::atomic::AtomicBool,
    lifted: tokio::sync::Notify,
}

impl Limiter {
    /// `rate` writes per second on average (at least one), up to `burst` at once (at least one).
    pub fn new(rate: u32, burst: u32, waited: Counter<f64, std::sync::atomic::AtomicU64>) -> Self {
        let period = Duration::from_secs(1) / rate.max(1);
        Self {
            period,
            tolerance: period * (burst.max(1) - 1),
            next: Mutex::new(None),
            waited,
            open: std::sync::atomic::AtomicBool::new(false),
            lifted: tokio::sync::Notify::new(),
        }
    }

    /// Reserves the next slot for a write arriving at `now`: when it may be sent.
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let arrival = next.map_or(now, |n| n.max(now));
        *next = Some(arrival + self.period);
        arrival.checked_sub(self.tolerance).map_or(now, |at| at.max(now))
    }

    /// Waits for this write's slot (not at all once the limit is lifted).
    pub async fn acquire(&self) {
        use std::sync::atomic::Ordering;
        let lifted = self.lifted.notified();
        if self.open.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let at = self.reserve(now);
        if at > now {
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = lifted => {}
            }
            self.waited.inc_by((Instant::now() - now).as_secs_f64());
        }
    }

    /// Lifts the limit for good: every waiting write goes at once, and later ones do not wait.
    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::Release);
        self.lifted.notify_waiters();
    }
}

/// Whether a request changes something (and so waits for the limit).
pub fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The layer that makes writes wait for the [`Limiter`]. The service it wraps must be `Clone`
/// (put a `tower::buffer::Buffer` under it).
#[derive(Clone)]
pub struct WriteLimitLayer(pub Arc<Limiter>);

impl<S> Layer<S> for WriteLimitLayer {
    type Service = WriteLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        WriteLimit { inner, limiter: self.0.clone() }
    }
}

/// See [`WriteLimitLayer`].
#[derive(Clone)]
pub struct WriteLimit<S> {
    inner: S,
    limiter: Arc<Limiter>,
}

impl<S, B> Service<Request<B>> for WriteLimit<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is awaited in the call, after the wait for a slot.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let limiter = is_write(request.method()).then(|| self.limiter.clone());
        Box::pin(async move {
            if let Some(limiter) = limiter {
                limiter.acquire().await;
            }
            inner.oneshot(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, burst: u32) -> Limiter {
        Limiter::new(rate, burst, Counter::default())
    }

    #[test]
    fn a_burst_goes_at_once_then_the_steady_rate_holds() {
        let l = limiter(10, 3);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Three at once, then one per 100 ms, in arrival order.
        let slots: Vec<Duration> = (0..6).map(|_| l.reserve(t0) - t0).collect();
        assert_eq!(slots, [ms(0), ms(0), ms(0), ms(100), ms(200), ms(300)]);
    }

    #[test]
    fn a_quiet_spell_refills_the_bucket_but_never_beyond_the_burst() {
        let l = limiter(10, 2);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        for _ in 0..4 {
            l.reserve(t0);
        }
        // Ten seconds later: two at once again, not a hundred.
        let later = t0 + Duration::from_secs(10);
        let slots: Vec<Duration> = (0..3).map(|_| l.reserve(later) - later).collect();
        assert_eq!(slots, [ms(0), ms(0), ms(100)]);
    }

    #[test]
    fn a_steady_stream_at_the_rate_never_waits() {
        let l = limiter(4, 1);
        let t0 = Instant::now();
        for i in 0..10 {
            let now = t0 + Duration::from_millis(250 * i);
            assert_eq!(l.reserve(now), now, "write {i}");
        }
    }

    #[test]
    fn only_writes_wait() {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_write(&method), "{method}");
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!is_write(&method), "{method}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_holds_writes_and_lets_reads_through() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let service = tower::service_fn(move |_: Request<()>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::convert::Infallible>(()) }
        });
        let waited = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        let layer = WriteLimitLayer(Arc::new(Limiter::new(1, 1, waited.clone())));
        let service = layer.layer(service);
        let request = |method: Method| Request::builder().method(method).body(()).unwrap();
        let start = Instant::now();
        service.clone().oneshot(request(Method::PATCH)).await.unwrap();
        service.clone().oneshot(request(Method::PATCH)).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(1), "the second write waited its slot");
        let before = Instant::now();
        service.clone().oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(Instant::now(), before, "a read does not wait");
        assert_eq!(sent.load(Ordering::SeqCst), 3);
        assert_eq!(waited.get(), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn lifting_the_limit_releases_every_waiter_at_once() {
        let limiter = Arc::new(limiter(1, 1));
        limiter.acquire().await; // the burst
        let start = Instant::now();
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.acquire().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        limiter.open();
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(Instant::now() - start, Duration::from_millis(100), "none waited for its slot");
        limiter.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_millis(100), "nor does a later write");
    }
}
