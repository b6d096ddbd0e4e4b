//! The load generator against a real hub and the baseline, in this process: the hub accepts its signed
//! requests and its Poussr v1 publishing, and every event it publishes is counted once, in order.

use std::time::Duration;

use poussr_bench::load::{Fleet, FleetConfig, PhaseConfig, Protocol, Target, Via};
use tokio::net::TcpListener;

async fn hub() -> (Target, tokio::sync::oneshot::Sender<()>) {
    poussr_bench::install_crypto_provider();
    let config = poussr::Config {
        apps: vec![poussr::AppConfig::new("77", "benchtestkey", "benchtestsecret")],
        ..Default::default()
    };
    let hub = poussr::adapter::hub(&config).unwrap();
    let frontend = poussr::http::Frontend::new(&config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(poussr::server::run(listener, hub, frontend, async move {
        let _ = stopped.await;
    }));
    let target =
        Target::Hub { addr, app_id: "77".into(), key: "benchtestkey".into(), secret: "benchtestsecret".into() };
    (target, stop)
}

fn fleet(target: Target, protocol: Protocol) -> FleetConfig {
    FleetConfig {
        target,
        protocol,
        connections: 20,
        channels: 3,
        channels_per_connection: 2,
        sources: 4,
        stalled: 0,
        connect_concurrency: 8,
        channel_prefix: "",
        tls: None,
    }
}

fn phase(via: Via) -> PhaseConfig {
    PhaseConfig { publishers: 2, rate: 200.0, via, payload: 120, duration: Duration::from_millis(500) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_accepts_the_signed_api_requests_and_v1_publishing_and_nothing_is_lost() {
    let (target, _stop) = hub().await;
    for (protocol, via) in [(Protocol::Pusher, Via::Api), (Protocol::V1, Via::V1Rest), (Protocol::Pusher, Via::V1Rest)]
    {
        let mut f = Fleet::connect(fleet(target.clone(), protocol)).await;
        assert_eq!((f.connect.connected, f.connect.errors), (20, 0), "{:?}", f.connect.first_error);
        let (_, report) = f.publish(&phase(via)).await;
        assert_eq!(report.publish_errors, 0, "{protocol:?} {via:?}: the hub refused some requests");
        assert!(report.published >= 90, "{report:?}");
        assert!(report.expected > 0 && report.received == report.expected, "{report:?}");
        let (reports, _) = f.close(vec![report]).await;
        let r = &reports[0];
        assert_eq!((r.lost, r.duplicated, r.reordered), (0, 0, 0), "{r:?}");
        assert_eq!(r.latency.samples as u64, r.received);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_over_wss_get_every_event_from_a_hub_serving_tls() {
    let dir = std::env::temp_dir().join(format!("poussr-bench-tls-test-{}", std::process::id()));
    let made = poussr::cert::create(&dir, &["127.0.0.1".to_owned()], false).unwrap();
    let mut config = poussr::Config {
        apps: vec![poussr::AppConfig::new("77", "benchtestkey", "benchtestsecret")],
        ..Default::default()
    };
    config.tls.cert = Some(made.files.cert.clone());
    config.tls.key = Some(made.files.key.clone());
    let hub = poussr::adapter::hub(&config).unwrap();
    let tls = poussr::tls::Tls::from_config(&config.tls).unwrap();
    let frontend = poussr::http::Frontend::new(&config).with_tls(tls);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(poussr::server::run(listener, hub, frontend, async move {
        let _ = stopped.await;
    }));
    let target =
        Target::Hub { addr, app_id: "77".into(), key: "benchtestkey".into(), secret: "benchtestsecret".into() };
    let tls = poussr_bench::tls::client_config(&made.files.ca).unwrap();
    let mut f = Fleet::connect(FleetConfig { tls: Some(tls), ..fleet(target, Protocol::Pusher) }).await;
    assert_eq!((f.connect.connected, f.connect.errors), (20, 0), "{:?}", f.connect.first_error);
    let (_, report) = f.publish(&phase(Via::Api)).await;
    let (reports, _) = f.close(vec![report]).await;
    let r = &reports[0];
    assert!(r.expected > 0 && r.received == r.expected, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.reordered), (0, 0, 0), "{r:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_timed_join_and_probe_is_answered_and_the_hub_is_left_empty() {
    let (target, _stop) = hub().await;
    let m = poussr_bench::joins::measure(&target, 50.0, Duration::from_secs(1)).await.unwrap();
    // 10 joiners at 5 joins/s each for 1 s, every one answered (the signed presence auth is accepted), and
    // as many echo probes beside them, every one echoed.
    assert_eq!((m.joins.len(), m.failed, m.probes.len()), (50, 0, 50));
    assert!(m.joins.iter().chain(&m.probes).all(|&us| us > 0));
    // Each join was followed by its leave, and each joiner waited for the hub's answer to its close, which
    // comes after the hub has handled the leave: the channel is empty now.
    let Target::Hub { addr, .. } = &target else { unreachable!() };
    let body = reqwest::get(format!("http://{addr}/health")).await.unwrap().bytes().await.unwrap();
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["channels"], 0, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_counted_as_publish_errors() {
    let (target, _stop) = hub().await;
    let Target::Hub { addr, app_id, key, .. } = target else { unreachable!() };
    let wrong = Target::Hub { addr, app_id, key, secret: "not-the-secret".into() };
    let mut f = Fleet::connect(fleet(wrong, Protocol::Pusher)).await;
    let (_, report) = f.publish(&phase(Via::Api)).await;
    assert_eq!(report.published, 0);
    assert!(report.publish_errors >= 90, "{report:?}");
    let (reports, _) = f.close(vec![report]).await;
    assert_eq!(reports[0].received, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baseline_relays_every_frame_to_every_subscriber() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(poussr_bench::baseline::serve(listener));
    // Publishers that write without waiting, and publishers that wait for each answer.
    for acked in [false, true] {
        let target = Target::Baseline { addr, acked };
        let config = FleetConfig { channels: 1, channels_per_connection: 1, ..fleet(target, Protocol::Pusher) };
        let mut f = Fleet::connect(config).await;
        assert_eq!(f.connect.connected, 20);
        let (_, report) = f.publish(&phase(Via::Api)).await;
        assert_eq!((report.published, report.publish_errors), (100, 0), "acked: {acked}; {report:?}");
        assert_eq!(report.received, report.published * 20, "acked: {acked}; {report:?}");
        let (reports, _) = f.close(vec![report]).await;
        assert_eq!((reports[0].lost, reports[0].duplicated, reports[0].reordered), (0, 0, 0), "acked: {acked}");
    }
}
