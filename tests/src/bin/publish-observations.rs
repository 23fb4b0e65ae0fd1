//! Publishes synthetic `ward.observation.v1` messages at QoS 1, as fast as the broker
//! acknowledges them: the load for the collector's ingest benchmark and its kill -9 test.
//!
//! `publish-observations HOST:PORT|- COUNT [DEVICES_PER_MESSAGE] [AGENT_ID] [POOL]`
//!
//! Message `n` (1-based) has seq `n`; its devices are taken round-robin from a pool of `POOL`
//! MACs (default 5000) so the collector updates existing devices as a real agent's deltas do.
//! Prints one line when every message is acknowledged by the broker.
//!
//! With `WARD_ACKED_FILE=<path>`, the seq of every acknowledged message is appended to that
//! file (one per line) as its PUBACK arrives, and the file is flushed even when the
//! connection fails: the kill -9 tests compare it with what the collector committed.
//!
//! With `WARD_PUBLISH_RATE=<messages per second>`, messages leave at that steady rate instead of
//! as fast as the window allows (a live site, so that a fault hits mid-stream). With
//! `WARD_INSTANCE=<id>`, the messages carry that instance instead of one per process: a second
//! run with the same instance replays the same (instance, seq) pairs, as an agent replaying
//! its spool after a broker failure does, and the collector must store each once. With
//! `WARD_SITE=<site>`, the messages are published under that site instead of `bench`
//! (collectors splitting the agents by site).

use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::io::Write;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use ward_protocols::schema::observation::{
    AddressRecord, ClassificationRecord, DeviceRecord, FactRecord, Kind, MacKind, Observation,
    Seen, ServiceRecord, SCHEMA,
};
use ward_protocols::{Field, MacAddr, Protocol};

fn device(i: u64, t: i64) -> DeviceRecord {
    let b = i.to_be_bytes();
    let mac = MacAddr([0x00, 0x1b, 0x21, b[5], b[6], b[7]]);
    let seen = Seen {
        first_us: t - 1_000_000,
        last_us: t,
        count: 10,
    };
    let fact = |field: Field, value: String| FactRecord {
        field,
        protocol: field.protocol(),
        value,
        seen,
    };
    let ip: std::net::IpAddr = format!("10.{}.{}.{}", b[5], b[6], b[7].max(1))
        .parse()
        .unwrap_or(std::net::IpAddr::from([10, 0, 0, 1]));
    DeviceRecord {
        key: format!("mac:{mac}"),
        mac: Some(mac),
        vlan: Some(120),
        mac_kind: Some(MacKind::Universal),
        oui_vendor: Some("Intel Corporate".into()),
        seen,
        addresses: vec![AddressRecord {
            ip,
            source: "ip".into(),
            seen,
        }],
        facts: vec![
            fact(Field::DicomCallingAe, format!("CT{i:05}")),
            fact(Field::DicomManufacturer, "WARD TEST MEDICAL".into()),
            fact(Field::DicomModelName, "WardScan 64".into()),
            fact(Field::DicomDeviceSerialNumber, format!("SN-{i:06}")),
            fact(Field::DicomSoftwareVersions, "VA40B".into()),
            fact(Field::DicomSopClass, "CT Image Storage".into()),
        ],
        services_offered: vec![],
        services_used: vec![ServiceRecord {
            transport: "tcp".into(),
            port: 104,
            app: Some(Protocol::Dicom),
            peers: 1,
            peer_addresses: vec![std::net::IpAddr::from([10, 0, 0, 5])],
            seen,
        }],
        roles: vec![],
        classification: Some(ClassificationRecord {
            manufacturer: Some("WARD TEST MEDICAL".into()),
            model: Some("WardScan 64".into()),
            device_type: "ct".into(),
            software_version: Some("VA40B".into()),
            confidence: 0.9,
            matches: vec![],
            candidates: vec![],
            explanation: None,
        }),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: publish-observations HOST:PORT COUNT [DEVICES_PER_MESSAGE] [AGENT_ID] [POOL]";
    let addr = args.get(1).ok_or_else(|| anyhow::anyhow!(usage))?;
    let count: u64 = args.get(2).ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let per: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let agent = args.get(4).cloned().unwrap_or_else(|| "bench".into());
    let site = std::env::var("WARD_SITE").unwrap_or_else(|_| "bench".into());
    let pool: u64 = args
        .get(5)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5000)
        .max(1);
    if addr == "-" {
        // JSON lines on stdout instead of MQTT: the same load for `ward-collector ingest`,
        // which measures the store without the broker.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let base = 1_767_225_600_000_000i64;
        for n in 1..=count {
            let t = base + n as i64 * 1000;
            let obs = Observation {
                schema: SCHEMA.into(),
                site: site.clone(),
                agent_id: agent.clone(),
                instance: "jsonl".into(),
                seq: n,
                kind: Kind::Delta,
                time_us: t,
                devices: (0..per)
                    .map(|k| device(((n - 1) * per + k) % pool, t))
                    .collect(),
            };
            serde_json::to_writer(&mut out, &obs)?;
            out.write_all(b"\n")?;
        }
        return Ok(());
    }
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("{addr}: expected HOST:PORT"))?;
    let mut o = MqttOptions::new(format!("pub-{agent}"), host, port.parse()?);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(8 << 20, 8 << 20);
    o.set_inflight(1000);
    let (client, mut ev) = AsyncClient::new(o, 2000);
    let instance = std::env::var("WARD_INSTANCE")
        .unwrap_or_else(|_| format!("{agent}-{}", std::process::id()));
    let rate: Option<f64> = std::env::var("WARD_PUBLISH_RATE")
        .ok()
        .map(|r| r.parse())
        .transpose()?
        .filter(|r: &f64| *r > 0.0);
    let topic = ward_mqtt::topic::devices_topic(&site, &agent);
    let t0 = Instant::now();
    let pubber = tokio::spawn(async move {
        let base = 1_767_225_600_000_000i64; // 2026-01-01
        let started = tokio::time::Instant::now();
        for n in 1..=count {
            if let Some(rate) = rate {
                tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / rate)).await;
            }
            let t = base + n as i64 * 1000;
            let devices = (0..per)
                .map(|k| device(((n - 1) * per + k) % pool, t))
                .collect();
            let obs = Observation {
                schema: SCHEMA.into(),
                site: site.clone(),
                agent_id: agent.clone(),
                instance: instance.clone(),
                seq: n,
                kind: Kind::Delta,
                time_us: t,
                devices,
            };
            let payload = serde_json::to_vec(&obs)?;
            client
                .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
                .await?;
        }
        anyhow::Ok(client)
    });
    let mut acked = 0u64;
    let mut acked_file = match std::env::var_os("WARD_ACKED_FILE") {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    // The publishing task sends seq 1, 2, … in order, so the k-th outgoing PUBLISH is seq k;
    // packet ids are unique among the messages in flight.
    let mut sent = 0u64;
    let mut in_flight: HashMap<u16, u64> = HashMap::new();
    while acked < count {
        match ev.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                sent += 1;
                in_flight.insert(pkid, sent);
            }
            Ok(Event::Incoming(Packet::PubAck(a))) => {
                acked += 1;
                if let (Some(f), Some(seq)) = (acked_file.as_mut(), in_flight.remove(&a.pkid)) {
                    writeln!(f, "{seq}")?;
                    // Progress a test can watch (it kills a broker mid-stream by it).
                    if acked.is_multiple_of(100) {
                        f.flush()?;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                if let Some(f) = acked_file.as_mut() {
                    f.flush()?;
                }
                anyhow::bail!("broker connection after {acked} acknowledgements: {e}")
            }
        }
    }
    if let Some(f) = acked_file.as_mut() {
        f.flush()?;
    }
    let client = pubber.await??;
    let _ = client.disconnect().await;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "published {count} messages ({} device records) acknowledged in {secs:.2} s: {:.0} msg/s",
        count * per,
        count as f64 / secs
    );
    Ok(())
}
