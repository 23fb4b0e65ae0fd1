//! Alerts from the running collector: the real agent's traffic opens flags, a contract import
//! resolves one on the next scheduled evaluation, and both events arrive over MQTT (a real
//! subscriber on the embedded broker) and at a real HTTP webhook receiver. Every alert payload
//! (MQTT and webhook, as the bytes arrived), the agent's and the collector's logs at debug and
//! the database with its WAL copied while the collector runs hold no patient canary.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A real HTTP/1.1 server that records each POSTed body (the raw bytes, and parsed) and
/// answers 200.
#[allow(clippy::type_complexity)]
fn webhook() -> (u16, Arc<Mutex<Vec<(Vec<u8>, Value)>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_ok() {
                let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                g.lock().unwrap().push((body, v));
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}

#[test]
fn flags_opened_by_ingest_and_resolved_by_import_are_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    let (hook_port, hooks) = webhook();
    std::fs::write(
        d.join("collector.toml"),
        format!(
            "[alerts]\nwebhook_url = \"http://127.0.0.1:{hook_port}/ward\"\n\
             webhook_backoff_initial_ms = 100\n[ingest]\nevaluate_debounce_secs = 0\n"
        ),
    )
    .unwrap();
    let cfg = d.join("collector.toml");
    let mut c = serve(
        &db,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--evaluate-interval",
            "1",
        ],
        &d.join("collector.log"),
    );
    let port = c.mqtt_port();

    // A real MQTT subscriber on the alerts topic; the test goes on once its SUBACK arrived.
    #[allow(clippy::type_complexity)]
    let mqtt: Arc<Mutex<Vec<(String, Vec<u8>, Value)>>> = Arc::new(Mutex::new(Vec::new()));
    let m = mqtt.clone();
    let (subscribed_tx, subscribed_rx) = std::sync::mpsc::channel();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.spawn(async move {
        let mut o = rumqttc::MqttOptions::new("alert-watcher", "127.0.0.1", port);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut ev) = rumqttc::AsyncClient::new(o, 100);
        client
            .subscribe("ward/v1/alerts/#", rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        loop {
            match ev.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(a))) => {
                    let _ = subscribed_tx.send(a.return_codes);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    m.lock()
                        .unwrap()
                        .push((p.topic.clone(), p.payload.to_vec(), v));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let codes = subscribed_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("no SUBACK for the alert subscription");
    assert_eq!(
        codes,
        vec![rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )],
        "subscription refused"
    );

    let out = Command::new(agent_bin())
        .arg("read")
        .arg(fixtures().join("dicom-dcmtk.pcap"))
        .arg(fixtures().join("hl7-mllp.pcap"))
        .args(["--output", &format!("mqtt://127.0.0.1:{port}")])
        .args([
            "--site",
            "north",
            "--agent-id",
            "span-1",
            "--log-level",
            "debug",
        ])
        .arg("--spool-dir")
        .arg(d.join("spool"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_log_clean("the agent's log (debug)", &out.stderr);
    let has = |evs: &[(String, Vec<u8>, Value)], event: &str, kind: &str| {
        evs.iter().any(|(t, _, v)| {
            t == "ward/v1/alerts/north" && v["event"] == event && v["flag"]["kind"] == kind
        })
    };
    eventually("no_contract opened over MQTT", || {
        has(&mqtt.lock().unwrap(), "opened", "no_contract")
    });
    eventually("no_contract opened at the webhook", || {
        hooks
            .lock()
            .unwrap()
            .iter()
            .any(|(_, v)| v["event"] == "opened" && v["flag"]["kind"] == "no_contract")
    });

    let contracts = d.join("c.yaml");
    std::fs::write(
        &contracts,
        "contracts:\n  - id: C-CT\n    supplier: WARD TEST MEDICAL\n    products: [\"WardScan *\"]\n",
    )
    .unwrap();
    cli_json(&db, &["contracts", "import", contracts.to_str().unwrap()]);
    // The CLI's evaluation resolved it in the database; the running collector alerts it on its
    // next round (every second here).
    eventually("no_contract resolved over MQTT", || {
        has(&mqtt.lock().unwrap(), "resolved", "no_contract")
    });
    eventually("no_contract resolved at the webhook", || {
        hooks
            .lock()
            .unwrap()
            .iter()
            .any(|(_, v)| v["event"] == "resolved" && v["flag"]["kind"] == "no_contract")
    });
    let live = copy_db_live(&db, &d.join("live-copy"));
    assert_db_copy_clean("database", &live);
    assert!(c.sigterm().success(), "{}", c.log_text());
    assert_log_clean("collector log (debug)", c.log_text());
    assert_db_clean("database after the run", &db);
    // Each event of each flag exactly once per channel.
    let st: Vec<(String, Vec<u8>, Value)> = mqtt.lock().unwrap().clone();
    let mut keys: Vec<(String, i64)> = st
        .iter()
        .map(|(_, _, v)| {
            (
                v["event"].as_str().unwrap().to_string(),
                v["flag"]["id"].as_i64().unwrap(),
            )
        })
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "an alert was repeated: {st:#?}");
    for (t, raw, v) in &st {
        assert_clean(&format!("MQTT alert on {t}"), raw);
        assert_eq!(v["schema"], "ward.alert.v1");
        assert!(t.starts_with("ward/v1/alerts/"));
    }
    let hooks = hooks.lock().unwrap();
    for (raw, v) in hooks.iter() {
        assert_clean("webhook body", raw);
        assert_eq!(v["schema"], "ward.alert.v1");
    }
    assert_eq!(
        hooks.len(),
        st.len(),
        "webhook and MQTT carry the same alerts"
    );
    // The alerts carry the evidence: device records whose canary-free content the scan above
    // checked, not empty shells.
    assert!(
        st.iter().any(|(_, raw, _)| raw.len() > 500),
        "no alert carries evidence"
    );
}

/// A collector `kill -9`ed after claiming alerts and before delivering them (its webhook was
/// down) no longer loses them: the next holder of the evaluator's lease — here the same
/// collector restarted — finds them claimed and undelivered and sends them; once delivered
/// they are recorded and not sent again.
#[test]
fn alerts_claimed_by_a_collector_killed_before_delivery_are_sent_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    let (hook_port, accept, hooks) = switchable_webhook(false);
    let cfg = d.join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[alerts]\nwebhook_url = \"http://127.0.0.1:{hook_port}/ward\"\nmqtt = false\n\
             webhook_backoff_initial_ms = 100\nwebhook_max_attempts = 1000\n\
             [ingest]\nevaluate_debounce_secs = 0\n"
        ),
    )
    .unwrap();
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--evaluate-interval",
        "1",
    ];
    let log = d.join("collector.log");
    let mut c = serve(&db, &args, &log);
    let port = c.mqtt_port();
    let out = Command::new(agent_bin())
        .arg("read")
        .arg(fixtures().join("dicom-dcmtk.pcap"))
        .args(["--output", &format!("mqtt://127.0.0.1:{port}")])
        .args(["--site", "north", "--agent-id", "span-1"])
        .arg("--spool-dir")
        .arg(d.join("spool"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = |sql: &str| -> i64 {
        db_rows(&db, sql)
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    };
    eventually(
        "flags claimed for alerting, the webhook refusing them",
        || count("SELECT count(*) FROM flags WHERE alerted != delivered") > 0,
    );
    c.kill9();
    let claimed = count("SELECT count(*) FROM flags WHERE alerted != delivered");
    assert_eq!(
        count("SELECT count(*) FROM flags WHERE alerted = 0"),
        0,
        "every flag was claimed before the kill"
    );
    assert!(hooks.lock().unwrap().is_empty());

    accept.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut c = serve(&db, &args, &log);
    eventually("the claimed alerts delivered after the restart", || {
        hooks.lock().unwrap().len() as i64 >= claimed
            && count("SELECT count(*) FROM flags WHERE alerted != delivered") == 0
    });
    assert!(c.sigterm().success(), "{}", c.log_text());
    assert!(
        c.log_text().contains("alerts claimed but never delivered"),
        "{}",
        c.log_text()
    );
    // Each opening once: delivered ones were recorded, so the restart sent only the lost.
    let mut ids: Vec<i64> = hooks
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["event"] == "opened")
        .map(|v| v["flag"]["id"].as_i64().unwrap())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "an alert delivered twice");
    assert_eq!(n as i64, claimed, "every claimed opening delivered");
}
