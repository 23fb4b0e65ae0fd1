//! Throughput of the protocols crate, per core:
//! - `frame_decode/*`: link → transport decoding of the fixture frames and of a synthetic mixed
//!   capture (packets/s; target ≥ 5 M/s for typical frames);
//! - `dissect/*`: decoding plus flow tracking, reassembly and detection (packets/s);
//! - `stream_scan/*`: DICOM and HL7 stream decoders fed long streams (bytes/s; target
//!   ≥ 2 GB/s);
//! - `app_exchange/*`: one captured exchange (probe plus both directions) through a fresh HTTP
//!   or SSH decoder (ns per connection).
//! - `tls_handshake/*`: one TLS connection's cleartext handshake (ClientHello with JA4, then the
//!   server's flight, with X.509 parsing up to TLS 1.2), per connection.
//!
//! Run with `cargo bench -p ward-protocols`.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;
use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError};
use ward_protocols::dicom::DicomDecoder;
use ward_protocols::dissect::Dissector;
use ward_protocols::frame::{self, LinkType};
use ward_protocols::hl7::Hl7Decoder;
use ward_protocols::tls::TlsDecoder;
use ward_protocols::{Direction, Feed, StreamDecoder};

fn load(path: &Path) -> Vec<(LinkType, Vec<u8>)> {
    let file = std::fs::File::open(path).expect("fixture");
    let mut reader = pcap_parser::create_reader(1 << 20, file).expect("pcap");
    let mut out = Vec::new();
    let mut legacy = 1;
    let mut ifaces = Vec::new();
    loop {
        match reader.next() {
            Ok((off, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => legacy = h.network.0 as u32,
                    PcapBlockOwned::Legacy(b) => {
                        if let Some(l) = LinkType::from_linktype(legacy) {
                            out.push((l, b.data[..b.caplen as usize].to_vec()));
                        }
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(i)) => {
                        ifaces.push(i.linktype.0 as u32)
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(e)) => {
                        if let Some(l) = ifaces
                            .get(e.if_id as usize)
                            .and_then(|&t| LinkType::from_linktype(t))
                        {
                            out.push((l, e.data[..e.caplen as usize].to_vec()));
                        }
                    }
                    _ => {}
                }
                reader.consume(off);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().expect("refill"),
            Err(e) => panic!("{e:?}"),
        }
    }
    out
}

fn fixture_frames() -> Vec<(LinkType, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut all = Vec::new();
    let mut paths = Vec::new();
    // Third-party captures are read in place from ../shared/captures/public/.
    let public = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures/public");
    for sub in [dir.clone(), public] {
        for e in std::fs::read_dir(sub).expect("fixtures dir").flatten() {
            let p = e.path();
            if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("pcap" | "pcapng")
            ) {
                paths.push(p);
            }
        }
    }
    paths.sort();
    for p in paths {
        all.extend(load(&p));
    }
    all
}

/// A synthetic mixed capture of typical clinical-VLAN frames: web and other TCP traffic (80%),
/// DNS-like UDP, ARP, over 1 000 connections, with and without VLAN tags.
fn synthetic_mix() -> Vec<(LinkType, Vec<u8>)> {
    let mut out = Vec::new();
    let payload = vec![0x41u8; 512];
    for i in 0..20_000u32 {
        let host = (i % 1000) as u8;
        let mut buf = Vec::new();
        let eth = PacketBuilder::ethernet2([0, 0x12, 0x21, 0, 0, host], [0, 0x0a, 0x37, 0, 0, 1]);
        match i % 10 {
            0..=5 => eth
                .ipv4([10, 1, 0, host], [10, 1, 1, 1], 64)
                .tcp(40000 + (i % 1000) as u16, 443, i * 512, 1024)
                .write(&mut buf, &payload[..(i as usize * 7) % 512])
                .unwrap(),
            6 | 7 => eth
                .single_vlan(100u16.try_into().unwrap())
                .ipv4([10, 1, 0, host], [10, 1, 1, 2], 64)
                .tcp(50000 + (i % 1000) as u16, 80, i * 100, 1024)
                .write(&mut buf, &payload[..100])
                .unwrap(),
            8 => eth
                .ipv4([10, 1, 0, host], [10, 1, 1, 53], 64)
                .udp(5353, 53)
                .write(&mut buf, &payload[..40])
                .unwrap(),
            _ => {
                buf.extend_from_slice(&[0xff; 6]);
                buf.extend_from_slice(&[
                    0, 0x12, 0x21, 0, 0, host, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1,
                ]);
                buf.extend_from_slice(&[0, 0x12, 0x21, 0, 0, host, 10, 1, 0, host]);
                buf.extend_from_slice(&[0; 6]);
                buf.extend_from_slice(&[10, 1, 1, 1]);
            }
        }
        out.push((LinkType::Ethernet, buf));
    }
    out
}

fn bench_frames(c: &mut Criterion) {
    for (name, frames) in [
        ("fixtures", fixture_frames()),
        ("synthetic_mix", synthetic_mix()),
    ] {
        let mut g = c.benchmark_group("frame_decode");
        g.throughput(Throughput::Elements(frames.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                for (l, f) in &frames {
                    let _ = black_box(frame::decode(*l, black_box(f)));
                }
            })
        });
        g.finish();
        let mut g = c.benchmark_group("dissect");
        g.throughput(Throughput::Elements(frames.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d = Dissector::default();
                let mut out = Vec::new();
                for (i, (l, f)) in frames.iter().enumerate() {
                    if let Ok(fr) = frame::decode(*l, f) {
                        d.process(i as i64, &fr, &mut out);
                    }
                }
                black_box(out.len())
            })
        });
        g.finish();
    }
}

/// Feeds a whole stream in 1460-byte segments the way the dissector would, without the prefix
/// limit, so the number is the decoder's own scanning speed.
fn scan<D: StreamDecoder + Default>(stream: &[u8]) -> usize {
    let mut d = D::default();
    let mut facts = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for seg in stream.chunks(1460) {
        pending.extend_from_slice(seg);
        match d.feed(Direction::FromClient, &pending, false, &mut facts) {
            Feed::Consumed(n) => {
                pending.drain(..n);
            }
            Feed::Done => break,
        }
    }
    facts.len()
}

fn dicom_stream() -> Vec<u8> {
    // A-ASSOCIATE-RQ followed by C-STORE P-DATA PDUs carrying 16 KiB dataset fragments, like a
    // modality pushing images.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/dicom");
    let mut s = std::fs::read(dir.join("store_explicit.client.bin")).expect("dicom testdata");
    let frag = vec![0u8; 16 * 1024];
    while s.len() < 32 << 20 {
        let len = (frag.len() + 6) as u32;
        s.extend_from_slice(&[0x04, 0]);
        s.extend_from_slice(&len.to_be_bytes());
        s.extend_from_slice(&((frag.len() + 2) as u32).to_be_bytes());
        s.extend_from_slice(&[1, 0x00]);
        s.extend_from_slice(&frag);
    }
    s
}

fn hl7_stream() -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/hl7");
    let one = std::fs::read(dir.join("hl7-oru-client.bin")).expect("hl7 testdata");
    let mut s = Vec::new();
    while s.len() < 32 << 20 {
        s.extend_from_slice(&one);
    }
    s
}

fn bench_streams(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream_scan");
    g.sample_size(20);
    let dicom = dicom_stream();
    g.throughput(Throughput::Bytes(dicom.len() as u64));
    g.bench_function("dicom_cstore_32MiB", |b| {
        b.iter(|| scan::<DicomDecoder>(black_box(&dicom)))
    });
    let hl7 = hl7_stream();
    g.throughput(Throughput::Bytes(hl7.len() as u64));
    g.bench_function("hl7_oru_32MiB", |b| {
        b.iter(|| scan::<Hl7Decoder>(black_box(&hl7)))
    });
    g.finish();
}

/// One captured exchange per decoder, both directions, through a fresh decoder (what each new
/// connection costs): ns per exchange.
fn bench_app_exchanges(c: &mut Criterion) {
    fn exchange(d: &mut dyn StreamDecoder, client: &[u8], server: &[u8]) -> usize {
        let mut facts = Vec::new();
        for (dir, bytes) in [
            (Direction::FromClient, client),
            (Direction::FromServer, server),
        ] {
            let _ = d.feed(dir, bytes, false, &mut facts);
        }
        facts.len()
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let read = |p: &str| std::fs::read(dir.join(p)).expect("testdata");
    let mut g = c.benchmark_group("app_exchange");
    let (rq, rp) = (read("http/request.bin"), read("http/response.bin"));
    g.throughput(Throughput::Bytes((rq.len() + rp.len()) as u64));
    g.bench_function("http_curl_keepalive", |b| {
        b.iter(|| {
            let _ = ward_protocols::http::looks_like_http(black_box(&rq));
            exchange(
                &mut ward_protocols::http::HttpDecoder::default(),
                black_box(&rq),
                black_box(&rp),
            )
        })
    });
    // FHIR: a client POSTing its own Device resource (the shape of tests/fixtures/fhir.pcap)
    // and the server's 201 echo: the HTTP decoder collects both JSON bodies for fhir.
    let device = br#"{"resourceType":"Device","udiCarrier":[{"deviceIdentifier":"00857674005079","carrierHRF":"(01)00857674005079(21)WTP7-000077"}],"status":"active","manufacturer":"WardTestMed","serialNumber":"WTP7-000077","modelNumber":"WTP-700","version":[{"type":{"text":"firmware"},"value":"7.4.2"}]}"#;
    let mut fq = format!(
        "POST /Device HTTP/1.1\r\nHost: 192.0.2.20:8090\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n",
        device.len()
    )
    .into_bytes();
    fq.extend_from_slice(device);
    let mut fp = format!(
        "HTTP/1.1 201 Created\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n",
        device.len()
    )
    .into_bytes();
    fp.extend_from_slice(device);
    g.throughput(Throughput::Bytes((fq.len() + fp.len()) as u64));
    g.bench_function("fhir_device_post", |b| {
        b.iter(|| {
            exchange(
                &mut ward_protocols::http::HttpDecoder::default(),
                black_box(&fq),
                black_box(&fp),
            )
        })
    });
    let (cl, sv) = (read("ssh/client.bin"), read("ssh/server.bin"));
    g.throughput(Throughput::Bytes((cl.len() + sv.len()) as u64));
    g.bench_function("ssh_openssh_banners", |b| {
        b.iter(|| {
            let _ = ward_protocols::ssh::looks_like_ssh(black_box(&cl));
            exchange(
                &mut ward_protocols::ssh::SshDecoder::default(),
                black_box(&cl),
                black_box(&sv),
            )
        })
    });
    // mDNS: the datagram path (probe, then extract) on the device's announcement.
    let ann = read("mdns/announce.bin");
    g.throughput(Throughput::Bytes(ann.len() as u64));
    g.bench_function("mdns_zeroconf_announcement", |b| {
        b.iter(|| {
            let _ = ward_protocols::mdns::probe(black_box(&ann));
            let mut facts = Vec::new();
            let _ = ward_protocols::mdns::extract(black_box(&ann), &mut facts);
            facts.len()
        })
    });
    // SSDP: the datagram path (probe, then extract) on the device's NOTIFY.
    let notify = read("ssdp/notify.bin");
    g.throughput(Throughput::Bytes(notify.len() as u64));
    g.bench_function("ssdp_upnp_notify", |b| {
        b.iter(|| {
            let _ = ward_protocols::ssdp::probe(black_box(&notify));
            let mut facts = Vec::new();
            let _ = ward_protocols::ssdp::extract(black_box(&notify), &mut facts);
            facts.len()
        })
    });
    // UPnP: async-upnp-client fetching minidlna's device description through the HTTP decoder
    // (the head, then the XML body through the description scanner).
    let (rq, rp) = (
        read("upnp/description.request.bin"),
        read("upnp/description.response.bin"),
    );
    g.throughput(Throughput::Bytes((rq.len() + rp.len()) as u64));
    g.bench_function("upnp_minidlna_description", |b| {
        b.iter(|| {
            let _ = ward_protocols::http::looks_like_http(black_box(&rq));
            exchange(
                &mut ward_protocols::http::HttpDecoder::default(),
                black_box(&rq),
                black_box(&rp),
            )
        })
    });
    // SNMP: the datagram path (probe, then extract) on net-snmp's v2c GetResponse.
    let resp = read("snmp/v2c-response.bin");
    g.throughput(Throughput::Bytes(resp.len() as u64));
    g.bench_function("snmp_v2c_get_response", |b| {
        b.iter(|| {
            let _ = ward_protocols::snmp::probe(black_box(&resp));
            let mut facts = Vec::new();
            let _ = ward_protocols::snmp::extract(black_box(&resp), &mut facts);
            facts.len()
        })
    });
    // LLMNR: probe, then extract, on the responder's A answer.
    let llmnr = read("llmnr/response.bin");
    g.throughput(Throughput::Bytes(llmnr.len() as u64));
    g.bench_function("llmnr_response", |b| {
        b.iter(|| {
            let _ = ward_protocols::llmnr::probe(black_box(&llmnr));
            let mut facts = Vec::new();
            let _ = ward_protocols::llmnr::extract(black_box(&llmnr), &mut facts);
            facts.len()
        })
    });
    // Unicast DNS: probe, then extract, on dnsmasq's answer with a CNAME chain.
    let dns = read("dns/response_cname.bin");
    g.throughput(Throughput::Bytes(dns.len() as u64));
    g.bench_function("dns_response_cname", |b| {
        b.iter(|| {
            let _ = ward_protocols::dns::probe(black_box(&dns));
            let mut facts = Vec::new();
            let _ = ward_protocols::dns::extract(black_box(&dns), &mut facts);
            facts.len()
        })
    });
    // NetBIOS name service: probe, then extract, on a broadcast name registration.
    let nbns = read("nbns/registration.bin");
    g.throughput(Throughput::Bytes(nbns.len() as u64));
    g.bench_function("nbns_registration", |b| {
        b.iter(|| {
            let _ = ward_protocols::nbns::probe(black_box(&nbns));
            let mut facts = Vec::new();
            let _ = ward_protocols::nbns::extract(black_box(&nbns), &mut facts);
            facts.len()
        })
    });
    // DHCPv6: probe, then extract, on dhclient's Request.
    let v6 = read("dhcpv6/request.bin");
    g.throughput(Throughput::Bytes(v6.len() as u64));
    g.bench_function("dhcpv6_request", |b| {
        b.iter(|| {
            let _ = ward_protocols::dhcpv6::probe(black_box(&v6));
            let mut facts = Vec::new();
            let _ = ward_protocols::dhcpv6::extract(black_box(&v6), &mut facts);
            facts.len()
        })
    });
    // LLDP: the link-layer path (probe, then extract) on lldpd's LLDP-MED announcement.
    let lldpdu = read("lldp/lldpd-med.bin");
    g.throughput(Throughput::Bytes(lldpdu.len() as u64));
    g.bench_function("lldp_med_inventory", |b| {
        b.iter(|| {
            let _ = ward_protocols::lldp::probe(black_box(&lldpdu));
            let mut facts = Vec::new();
            let _ = ward_protocols::lldp::extract(black_box(&lldpdu), &mut facts);
            facts.len()
        })
    });
    // CDP: probe, then extract, on lldpd's CDPv2 message.
    let cdp = read("cdp/lldpd-v2.bin");
    g.throughput(Throughput::Bytes(cdp.len() as u64));
    g.bench_function("cdp_v2", |b| {
        b.iter(|| {
            let _ = ward_protocols::cdp::probe(black_box(&cdp));
            let mut facts = Vec::new();
            let _ = ward_protocols::cdp::extract(black_box(&cdp), &mut facts);
            facts.len()
        })
    });
    // IEEE 11073 SDC: probe, then extract, on sdc11073's WS-Discovery Hello (location and
    // device-class scopes); and the DPWS metadata body of its GetMetadata response.
    let hello = read("sdc/hello.bin");
    g.throughput(Throughput::Bytes(hello.len() as u64));
    g.bench_function("sdc_wsd_hello", |b| {
        b.iter(|| {
            let _ = ward_protocols::sdc::probe(black_box(&hello));
            let mut facts = Vec::new();
            let _ = ward_protocols::sdc::extract(black_box(&hello), &mut facts);
            facts.len()
        })
    });
    let metadata = read("sdc/metadata_response_body.xml");
    g.throughput(Throughput::Bytes(metadata.len() as u64));
    g.bench_function("sdc_dpws_metadata", |b| {
        b.iter(|| {
            let mut facts = Vec::new();
            ward_protocols::sdc::metadata_facts(black_box(&metadata), &mut facts);
            facts.len()
        })
    });
    // ASTM: the analyzer's two sessions (one record per frame, then ETB-split frames) and the
    // LIS's ACKs, probe included.
    let mut cl = read("astm/frames-client.bin");
    cl.extend(read("astm/chunked-client.bin"));
    let mut sv = read("astm/frames-server.bin");
    sv.extend(read("astm/chunked-server.bin"));
    g.throughput(Throughput::Bytes((cl.len() + sv.len()) as u64));
    g.bench_function("astm_analyzer_sessions", |b| {
        b.iter(|| {
            let _ = ward_protocols::astm::looks_like_astm(black_box(&cl));
            exchange(
                &mut ward_protocols::astm::AstmDecoder::new(),
                black_box(&cl),
                black_box(&sv),
            )
        })
    });
    // IntelliVue: probe, then extract, on a monitor's MDS Create Event Report.
    let iv = read("intellivue/mds-create.bin");
    g.throughput(Throughput::Bytes(iv.len() as u64));
    g.bench_function("intellivue_mds_create", |b| {
        b.iter(|| {
            let _ = ward_protocols::intellivue::probe(black_box(&iv));
            let mut facts = Vec::new();
            let _ = ward_protocols::intellivue::extract(black_box(&iv), &mut facts);
            facts.len()
        })
    });
    // POCT1-A: a device's hello, status and observation on one connection direction.
    let mut poct = read("poct1a/hel.xml");
    poct.extend_from_slice(&read("poct1a/dst.xml"));
    poct.extend_from_slice(&read("poct1a/obs.xml"));
    g.throughput(Throughput::Bytes(poct.len() as u64));
    g.bench_function("poct1a_conversation", |b| {
        b.iter(|| {
            use ward_protocols::StreamDecoder;
            let _ = ward_protocols::poct1a::looks_like_poct1a(black_box(&poct));
            let mut d = ward_protocols::poct1a::Poct1aDecoder::default();
            let mut facts = Vec::new();
            let _ = d.feed(Direction::FromClient, black_box(&poct), false, &mut facts);
            facts.len()
        })
    });
    // B. Braun BCC: a SpaceCom's answer to MEM:GET.
    let bcc = read("bcc/response.bin");
    g.throughput(Throughput::Bytes(bcc.len() as u64));
    g.bench_function("bcc_response", |b| {
        b.iter(|| {
            use ward_protocols::StreamDecoder;
            let _ = ward_protocols::bcc::looks_like_bcc(black_box(&bcc));
            let mut d = ward_protocols::bcc::BccDecoder::default();
            let mut facts = Vec::new();
            let _ = d.feed(Direction::FromServer, black_box(&bcc), false, &mut facts);
            facts.len()
        })
    });
    g.finish();
}

/// One connection: the client's first flight, then the server's, each as one segment.
fn handshake(client: &[u8], server: &[u8]) -> usize {
    let mut d = TlsDecoder::new();
    let mut facts = Vec::new();
    let _ = d.feed(Direction::FromClient, client, false, &mut facts);
    let _ = d.feed(Direction::FromServer, server, false, &mut facts);
    facts.len()
}

fn bench_tls(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tls");
    let read = |n: &str| std::fs::read(dir.join(n)).expect("tls testdata");
    let mut g = c.benchmark_group("tls_handshake");
    g.throughput(Throughput::Elements(1));
    for (name, stem) in [
        ("tls12_with_certificate", "vent-tls12"),
        ("tls13_hellos", "vent-tls13"),
    ] {
        let (cl, sv) = (
            read(&format!("{stem}-client.bin")),
            read(&format!("{stem}-server.bin")),
        );
        g.bench_function(name, |b| {
            b.iter(|| handshake(black_box(&cl), black_box(&sv)))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_frames,
    bench_streams,
    bench_app_exchanges,
    bench_tls
);
criterion_main!(benches);
