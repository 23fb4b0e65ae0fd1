//! One test per encoding (each also checks the reported offset), the matching rules, and the
//! negative cases: ordinary words, ward's own vocabulary and random bytes match nothing.

use super::*;

fn hl7() -> Scanner {
    Scanner::new().with_values(
        "test",
        [
            "CANARYFAMILY^CANARYGIVEN",
            "CANARY-MRN-HL7-0001",
            "CANARYADT^PATIENT",
            "CANARY^DICOMPATIENT",
            "CANARY^WORKLISTPATIENT",
            "MOUSE^MICKEY",
        ],
    )
}

fn family() -> Scanner {
    Scanner::new().with("test", Kind::Name, "CANARYFAMILY^CANARYGIVEN")
}

/// The single finding of `hay` (panics on none).
fn one(s: &Scanner, hay: &[u8]) -> Finding {
    let f = s.scan(hay);
    assert!(
        !f.is_empty(),
        "no finding in {:?}",
        String::from_utf8_lossy(hay)
    );
    f[0].clone()
}

fn b64(data: &[u8], url: bool) -> String {
    let alpha: &[u8] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = u32::from(c[0]) << 16
            | u32::from(*c.get(1).unwrap_or(&0)) << 8
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..=c.len() {
            out.push(alpha[(n >> (18 - 6 * k) & 63) as usize] as char);
        }
        if !url {
            for _ in c.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

/// A small deterministic PRNG (xorshift) for the random-bytes negative test.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

// ---------------------------------------------------------------------------------------------
// Components and prefixes

#[test]
fn components_prefixes_and_skips() {
    let s = hl7();
    let searched: Vec<(&str, usize)> = s
        .components()
        .iter()
        .map(|c| (c.text.as_str(), c.min_match))
        .collect();
    assert!(searched.contains(&("CANARYFAMILY", 6)));
    assert!(searched.contains(&("CANARYGIVEN", 6)));
    assert!(searched.contains(&("CANARY-MRN-HL7-0001", 6)));
    // `dicomp` is part of `DicomPdu`, `workli` of `worklist_server`: lengthened.
    assert!(searched.contains(&("DICOMPATIENT", 7)), "{searched:?}");
    assert!(searched.contains(&("WORKLISTPATIENT", 9)), "{searched:?}");
    // A 5-letter name is searched whole.
    assert!(searched.contains(&("MOUSE", 5)));
    assert!(searched.contains(&("MICKEY", 6)));
    let skipped: Vec<&str> = s.skipped().iter().map(|k| k.text.as_str()).collect();
    assert!(skipped.contains(&"PATIENT"), "{skipped:?}");
    assert!(!searched.iter().any(|(t, _)| *t == "PATIENT"));
}

#[test]
fn whole_component_and_case_insensitive() {
    let s = family();
    for hay in [
        &b"name=CANARYFAMILY"[..],
        b"name=canaryfamily",
        b"name=CanaryGiven!",
    ] {
        let f = one(&s, hay);
        assert_eq!(f.encoding, "raw");
        assert_eq!(f.offset, 5);
        assert!(f.matched >= 11, "{f:?}");
    }
}

#[test]
fn every_prefix_of_six_or_more_characters_matches() {
    let s = family();
    for n in 6..=12 {
        let hay = format!("x {} y", &"CANARYFAMILY"[..n]);
        let f = one(&s, hay.as_bytes());
        assert_eq!((f.offset, f.matched), (2, n), "{hay}");
    }
    // Five characters are not a match.
    assert!(s.is_clean(b"x CANAR y"));
}

#[test]
fn a_prefix_shared_by_several_canaries_is_named_as_such() {
    let s = hl7();
    let f = one(&s, b"x CANARY^SOMEONE");
    assert_eq!(f.component, "CANARY");
    assert!(f.source.contains("shared prefix"), "{f:?}");
    let f = one(&s, b"x CANARYGIV");
    assert_eq!((f.component.as_str(), f.matched), ("CANARYGIVEN", 9));
}

#[test]
fn numbers_and_dates_match_whole_only() {
    let s =
        Scanner::new()
            .with("t", Kind::Date, "19700101")
            .with("t", Kind::Identifier, "98765432");
    assert_eq!(one(&s, b"dob 19700101").offset, 4);
    assert_eq!(one(&s, b"id=98765432;").offset, 3);
    assert!(s.is_clean(b"t=1970010 2024-01-01 9876543"));
    // A 5-digit number identifies nothing.
    let short = Scanner::new().with("t", Kind::Identifier, "12345");
    assert!(short.components().is_empty());
    assert_eq!(short.skipped().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// One test per encoding

#[test]
fn hex_plain_upper_lower_and_misaligned() {
    let s = family();
    let hex: String = b"CANARYFAMILY".iter().map(|b| format!("{b:02x}")).collect();
    let f = one(&s, format!("bytes {hex} end").as_bytes());
    assert_eq!((f.encoding.as_str(), f.offset), ("hex", 6));
    assert_eq!(one(&s, hex.to_uppercase().as_bytes()).encoding, "hex");
    // Preceded by a stray hex digit: decoded at the other nibble alignment.
    let f = one(&s, format!("a{hex}").as_bytes());
    assert_eq!((f.encoding.as_str(), f.offset), ("hex", 1));
    // After 0x.
    assert_eq!(one(&s, format!("0x{hex}").as_bytes()).offset, 2);
}

#[test]
fn hex_byte_lists_every_usual_rendering() {
    let s = family();
    let b = b"CANARYGIVEN";
    let renderings = [
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
        b.iter()
            .map(|x| format!("{x:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
        b.iter()
            .map(|x| format!("0x{x:02x}"))
            .collect::<Vec<_>>()
            .join(", "),
        b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>(),
        format!("{:x?}", b.to_vec()),
        format!("{:#04x?}", b.to_vec()),
    ];
    for r in renderings {
        let hay = format!("data: {r}");
        let f = one(&s, hay.as_bytes());
        assert!(f.encoding.starts_with("hex"), "{r}: {f:?}");
        assert!((6..=12).contains(&f.offset), "{r}: {f:?}");
    }
}

#[test]
fn decimal_byte_lists_as_the_review_found_them() {
    let s = family();
    let b = b"CANARYFAMILY";
    let renderings = [
        format!("{:?}", b.to_vec()), // [67, 65, 78, 65, 82, 89, ...]: the review's leak
        format!("{:#?}", b.to_vec()), // one number per line
        b.iter().map(u8::to_string).collect::<Vec<_>>().join(","),
        b.iter().map(u8::to_string).collect::<Vec<_>>().join(" "),
        b.iter().map(u8::to_string).collect::<Vec<_>>().join("; "),
    ];
    for r in renderings {
        let hay = format!("{{\"payload\":{r}}}");
        let f = one(&s, hay.as_bytes());
        assert_eq!(f.encoding, "decimal byte list", "{r}");
        assert!((11..=17).contains(&f.offset), "{r}: {f:?}");
    }
    // Only the first six bytes of the name, in a longer list of other bytes.
    let hay = "[1, 2, 3, 67, 65, 78, 65, 82, 89, 0, 255]";
    let f = one(&s, hay.as_bytes());
    assert_eq!((f.offset, f.matched), (10, 6));
}

#[test]
fn base64_standard_url_safe_misaligned_and_wrapped() {
    let s = family();
    let f = one(&s, format!("x={}", b64(b"CANARYFAMILY", false)).as_bytes());
    assert_eq!((f.encoding.as_str(), f.offset), ("base64", 2));
    // In the middle of a longer encoding, at each of the three byte alignments.
    for pre in ["", "a", "ab"] {
        let enc = b64(format!("{pre}xx CANARYGIVEN yy").as_bytes(), true);
        let f = one(&s, enc.as_bytes());
        assert_eq!(f.encoding, "base64", "{pre:?}");
    }
    // Preceded by alphabet characters that are not part of the encoding.
    let f = one(
        &s,
        format!("tokenQ{}", b64(b"CANARYGIVEN", false)).as_bytes(),
    );
    assert_eq!(f.encoding, "base64");
    // MIME-wrapped at 76 characters, the name across the line break.
    let mut long = vec![b'x'; 55];
    long.extend_from_slice(b"CANARYFAMILY and more");
    let enc = b64(&long, false);
    let wrapped = format!("{}\r\n{}", &enc[..76], &enc[76..]);
    assert_eq!(one(&s, wrapped.as_bytes()).encoding, "base64");
}

#[test]
fn json_unicode_escapes_whole_partial_and_double() {
    let s = family();
    let all: String = "CANARYFAMILY"
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let f = one(&s, format!("{{\"n\":\"{all}\"}}").as_bytes());
    assert_eq!((f.encoding.as_str(), f.offset), ("JSON escapes", 6));
    // One letter escaped is enough to hide it from a substring check.
    let f = one(&s, br#"{"n":"\u0043ANARYGIVEN"}"#);
    assert_eq!((f.encoding.as_str(), f.offset), ("JSON escapes", 6));
    // JSON in a JSON string: two layers.
    let f = one(&s, br#"{"log":"{\"n\":\"\\u0043\\u0041NARYGIVEN\"}"}"#);
    assert_eq!(f.encoding, "JSON escapes > JSON escapes");
}

#[test]
fn percent_encoding() {
    let s = family();
    let f = one(&s, b"GET /p?name=%43%41%4E%41%52%59FAMILY HTTP/1.1");
    assert_eq!((f.encoding.as_str(), f.offset), ("percent-encoding", 12));
    assert_eq!(one(&s, b"q=CANA%52YGIVEN").encoding, "percent-encoding");
}

#[test]
fn hl7_escape_sequences() {
    let s = family();
    // \X..\ hex bytes.
    let f = one(&s, b"PID|1||\\X43414E415259\\FAMILY");
    assert_eq!((f.encoding.as_str(), f.offset), ("HL7 escapes", 7));
    // Formatting escapes inside the name are dropped.
    assert_eq!(one(&s, b"OBX|CANA\\H\\RYGIVEN").encoding, "HL7 escapes");
    assert_eq!(one(&s, b"OBX|CANARY\\.br\\GIVEN").encoding, "HL7 escapes");
    // Delimiter escapes decode: a name with an escaped component separator.
    let names = Scanner::new().with("t", Kind::Identifier, "CANARY^WHOLE");
    let f = one(&names, b"NTE|1||CANARY\\S\\WHOLE|");
    assert_eq!(f.encoding, "HL7 escapes");
    for (esc, ch) in [("F", '|'), ("S", '^'), ("T", '&'), ("R", '~'), ("E", '\\')] {
        let id = Scanner::new().with("t", Kind::Identifier, &format!("CANARY{ch}X"));
        let hay = format!("NTE|CANARY\\{esc}\\X|");
        assert_eq!(one(&id, hay.as_bytes()).encoding, "HL7 escapes", "{esc}");
    }
}

#[test]
fn html_references_and_utf16() {
    let s = family();
    assert_eq!(
        one(&s, b"<td>&#67;&#x41;NARYGIVEN</td>").encoding,
        "HTML character references"
    );
    let le: Vec<u8> = "xxCANARYFAMILY"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let f = one(&s, &le);
    assert_eq!((f.encoding.as_str(), f.offset), ("UTF-16", 4));
    let mut be = vec![0xffu8];
    be.extend("CANARYGIVEN".encode_utf16().flat_map(u16::to_be_bytes));
    assert_eq!(one(&s, &be).encoding, "UTF-16");
}

#[test]
fn two_layers_base64_of_escaped_json_and_hex_in_base64() {
    let s = family();
    let inner = br#"{"n":"\u0043ANARYFAMILY"}"#;
    let f = one(&s, b64(inner, false).as_bytes());
    assert_eq!(f.encoding, "base64 > JSON escapes");
    let hex: String = b"CANARYGIVEN".iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        one(&s, b64(hex.as_bytes(), false).as_bytes()).encoding,
        "base64 > hex"
    );
}

#[test]
fn offsets_point_into_the_scanned_buffer() {
    let s = family();
    let mut hay = vec![b'.'; 1000];
    let enc = b64(b"..CANARYFAMILY..", false);
    hay.extend_from_slice(b" ");
    let at = hay.len();
    hay.extend_from_slice(enc.as_bytes());
    hay.extend_from_slice(b" tail");
    let f = one(&s, &hay);
    // The match starts in the first quantum holding its first byte.
    assert!((at..at + 4).contains(&f.offset), "{f:?} vs {at}");
}

// ---------------------------------------------------------------------------------------------
// Negative cases

#[test]
fn ordinary_words_and_ward_output_do_not_match() {
    let s = hl7();
    let text = b"patient monitor patient_monitor PATIENT Patient Person relative street \
        worklist_server worklist_scu DicomPdu dicom.calling_ae Worklist canar CANAR mous \
        no: mick micke; the Modality Worklist Information Model - FIND, \
        00:12:21:4c:56:01 10.0.0.1 2024-01-01T12:00:00Z [1, 2, 3, 4, 5, 6, 7, 8]";
    assert!(s.is_clean(text), "{:?}", s.scan(text));
    // Ward's own vocabulary: the rules it classifies with and the schema it writes.
    for dir in ["../../agent/rules", "../../docs/schema"] {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let scan = Scanner::fixtures().scan_dir(&d).unwrap();
        assert!(!scan.files.is_empty(), "{}", d.display());
        assert!(scan.findings.is_empty(), "{dir}: {:?}", scan.findings);
    }
}

#[test]
fn random_bytes_do_not_match() {
    let s = Scanner::fixtures();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..1 << 20).map(|_| rng(&mut seed) as u8).collect();
    assert!(s.is_clean(&bytes), "{:?}", s.scan(&bytes));
    // Random text in the alphabets the decoders read.
    for alpha in [
        &b"0123456789abcdef "[..],
        b"0123456789, ",
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    ] {
        let text: Vec<u8> = (0..1 << 18)
            .map(|_| alpha[rng(&mut seed) as usize % alpha.len()])
            .collect();
        assert!(s.is_clean(&text), "{:?}", s.scan(&text));
    }
}

#[test]
fn every_manifest_canary_has_a_searched_component() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/manifest.json");
    let doc = json::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let all = Scanner::fixtures();
    let mut n = 0;
    for fx in doc.get("fixtures").unwrap().as_array().unwrap() {
        for c in fx
            .get("canaries")
            .and_then(json::Value::as_array)
            .unwrap_or_default()
        {
            let c = c.as_str().unwrap();
            let alone = Scanner::new().with_values("t", [c]);
            assert!(
                !alone.components().is_empty(),
                "canary {c:?} would not be searched"
            );
            // And the whole scanner finds it, raw.
            assert!(!all.is_clean(c.as_bytes()), "{c:?}");
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} canaries in the manifest");
    assert!(all.components().len() >= 10);
}

#[test]
fn manifest_records_and_one_fixture() {
    let dir = std::env::temp_dir().join(format!("ward-canary-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let m = dir.join("manifest.json");
    std::fs::write(
        &m,
        r#"{"fixtures":[
            {"file":"a.pcap","canaries":[{"family":"CANARYREC","given":"GIVENREC",
              "mrn":"MRN-000-777","birth_date":"19650405","physician":"DRWHOEVER^JOHN"}]},
            {"file":"b.pcap","canaries":["ZEBRAB^XAVIERA"]}]}"#,
    )
    .unwrap();
    let all = Scanner::from_manifest(&m);
    assert!(!all.is_clean(b"19650405"));
    assert!(!all.is_clean(b"mrn-000-777"));
    assert!(!all.is_clean(b"drwhoe"));
    assert!(all.is_clean(b"19650406 1965 0405"));
    let a = Scanner::from_manifest_fixture(&m, "a.pcap");
    assert!(a.is_clean(b"XAVIERA"));
    assert!(!all.is_clean(b"XAVIERA"));
    assert_eq!(one(&a, b"x givenrec").source, "a.pcap");
    assert!(Scanner::try_from_manifest(&m, Some("c.pcap")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The assertions

#[test]
fn assert_clean_names_the_finding_but_never_the_haystack() {
    let s = family();
    let secret = "SECRETCONTEXTBEFORE";
    let hay = format!("{secret} [67, 65, 78, 65, 82, 89, 71] AFTERCONTEXT");
    let err = std::panic::catch_unwind(|| s.assert_clean("the log", hay.as_bytes()))
        .expect_err("must panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("the log"), "{msg}");
    assert!(msg.contains("CANARYGIVEN"), "{msg}");
    assert!(msg.contains("decimal byte list"), "{msg}");
    assert!(
        msg.contains(&format!("byte offset {}", secret.len() + 2)),
        "{msg}"
    );
    assert!(
        !msg.contains("SECRET") && !msg.contains("AFTER") && !msg.contains("67, 65"),
        "{msg}"
    );
}

#[test]
#[should_panic(expected = "no canary to look for")]
fn an_empty_scanner_refuses_to_pass() {
    Scanner::new().assert_clean("anything", b"CANARYFAMILY");
}

#[test]
fn scan_dir_reads_every_file_and_fails_on_a_missing_dir() {
    let s = family();
    let dir = std::env::temp_dir().join(format!("ward-canary-dir-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("clean.msg"), b"nothing here").unwrap();
    std::fs::write(dir.join("sub/leak.msg"), b64(b"CANARYGIVEN", false)).unwrap();
    let scan = s.scan_dir(&dir).unwrap();
    assert_eq!(scan.files.len(), 2);
    assert_eq!(scan.findings.len(), 1);
    assert!(scan.findings[0].0.ends_with("sub/leak.msg"));
    std::fs::remove_file(dir.join("sub/leak.msg")).unwrap();
    assert_eq!(s.assert_dir_clean("spool", &dir).len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(s.scan_dir(&dir).is_err());
}
