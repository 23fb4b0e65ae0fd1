//! CMMS asset-register import: a CSV export of the clinical-engineering inventory, mapped by
//! header into [`Asset`]s.
//!
//! No two CMMS products export the same columns (and exports have dozens), so columns are
//! found by header name with built-in synonyms, overridable with `--map field=Header`; columns
//! nobody asked for are reported, not silently dropped, so a user can spot a mapping that
//! missed. `docs/assets.md` is the user-facing description.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use ward_protocols::MacAddr;

use crate::import::files::{csv_error, csv_reader, read_text, ImportError, Record};
use crate::import::model::Asset;

/// An [`Asset`] field a CSV column can feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Asset tag (required, unique).
    Tag,
    /// Serial number.
    Serial,
    /// MAC address.
    Mac,
    /// IP address.
    Ip,
    /// Host name.
    Hostname,
    /// Manufacturer.
    Manufacturer,
    /// Model.
    Model,
    /// Location.
    Location,
    /// Department.
    Department,
    /// Contract id.
    ContractId,
    /// Risk class.
    RiskClass,
}

impl Field {
    /// Every field, in `--map` documentation order.
    pub const ALL: [Field; 11] = [
        Field::Tag,
        Field::Serial,
        Field::Mac,
        Field::Ip,
        Field::Hostname,
        Field::Manufacturer,
        Field::Model,
        Field::Location,
        Field::Department,
        Field::ContractId,
        Field::RiskClass,
    ];

    /// The name used in `--map` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Field::Tag => "tag",
            Field::Serial => "serial",
            Field::Mac => "mac",
            Field::Ip => "ip",
            Field::Hostname => "hostname",
            Field::Manufacturer => "manufacturer",
            Field::Model => "model",
            Field::Location => "location",
            Field::Department => "department",
            Field::ContractId => "contract_id",
            Field::RiskClass => "risk_class",
        }
    }

    /// Headers recognised without `--map` (compared after [`normalize`]).
    pub fn synonyms(self) -> &'static [&'static str] {
        match self {
            Field::Tag => &[
                "asset tag",
                "asset no",
                "asset number",
                "asset id",
                "asset #",
                "tag",
                "tag number",
                "equipment id",
                "equipment no",
                "equipment number",
                "control number",
                "control no",
            ],
            Field::Serial => &["serial", "serial number", "serial no", "s/n", "sn"],
            Field::Mac => &["mac", "mac address", "hw address", "hardware address"],
            Field::Ip => &["ip", "ip address", "ipv4 address", "ipv6 address"],
            Field::Hostname => &["hostname", "host name", "dns name", "fqdn"],
            Field::Manufacturer => &["manufacturer", "mfr", "mfg", "make", "vendor"],
            Field::Model => &["model", "model number", "model no", "model name"],
            Field::Location => &["location", "room"],
            Field::Department => &["department", "dept"],
            Field::ContractId => &[
                "contract",
                "contract id",
                "contract number",
                "contract no",
                "service contract",
            ],
            Field::RiskClass => &["risk", "risk class", "risk level", "risk category"],
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Field {
    type Err = MapError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = normalize(s);
        Field::ALL
            .into_iter()
            .find(|f| normalize(f.name()) == key)
            .ok_or_else(|| MapError::UnknownField(s.trim().to_owned()))
    }
}

/// A bad `--map` argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// Not `field=Header`.
    #[error("--map {0:?}: expected FIELD=HEADER, e.g. tag=Equip #")]
    Syntax(String),
    /// The field is not an asset field.
    #[error("--map: unknown field {0:?} (fields: tag, serial, mac, ip, hostname, manufacturer, model, location, department, contract_id, risk_class)")]
    UnknownField(String),
    /// The same field mapped twice.
    #[error("--map: {0} is mapped more than once")]
    Duplicate(Field),
}

/// Which column feeds which field: built-in synonyms, overridden per field by `--map`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    overrides: Vec<(Field, String)>,
}

impl ColumnMap {
    /// From `--map` arguments (`field=Header`); fields not named keep their synonyms.
    pub fn with_overrides<S: AsRef<str>>(specs: &[S]) -> Result<ColumnMap, MapError> {
        let mut map = ColumnMap::default();
        for spec in specs {
            let spec = spec.as_ref();
            let (field, header) = spec
                .split_once('=')
                .filter(|(_, h)| !h.trim().is_empty())
                .ok_or_else(|| MapError::Syntax(spec.to_owned()))?;
            let field: Field = field.parse()?;
            if map.overrides.iter().any(|(f, _)| *f == field) {
                return Err(MapError::Duplicate(field));
            }
            map.overrides.push((field, header.trim().to_owned()));
        }
        Ok(map)
    }

    /// Decides the field of each column, or says why the header cannot be used.
    fn resolve(&self, headers: &[&str]) -> Result<Vec<Option<Field>>, String> {
        let keys: Vec<String> = headers.iter().map(|h| normalize(h)).collect();
        let mut slots: Vec<Option<Field>> = vec![None; headers.len()];
        let columns = || {
            let quoted: Vec<String> = headers.iter().map(|h| format!("{h:?}")).collect();
            quoted.join(", ")
        };
        for (field, header) in &self.overrides {
            // An exact (case-insensitive) match first: normalising "Equip #" to "equip" could
            // otherwise make it ambiguous with a column "Equip".
            let wanted = header.to_lowercase();
            let mut found: Vec<usize> = (0..headers.len())
                .filter(|&i| headers[i].to_lowercase() == wanted)
                .collect();
            if found.is_empty() && !normalize(header).is_empty() {
                found = (0..headers.len())
                    .filter(|&i| keys[i] == normalize(header))
                    .collect();
            }
            match found.as_slice() {
                [] => {
                    return Err(format!(
                        "--map {field}={header}: no such column (columns: {})",
                        columns()
                    ))
                }
                [i] => match slots[*i] {
                    Some(other) => {
                        return Err(format!(
                            "column {:?} is mapped to both {other} and {field}",
                            headers[*i]
                        ))
                    }
                    None => slots[*i] = Some(*field),
                },
                _ => return Err(format!("--map {field}={header}: several columns match")),
            }
        }
        for field in Field::ALL {
            if self.overrides.iter().any(|(f, _)| *f == field) {
                continue;
            }
            let found: Vec<usize> = (0..headers.len())
                .filter(|&i| {
                    slots[i].is_none() && field.synonyms().iter().any(|s| normalize(s) == keys[i])
                })
                .collect();
            match found.as_slice() {
                [] => {}
                [i] => slots[*i] = Some(field),
                [a, b, ..] => {
                    return Err(format!(
                        "columns {:?} and {:?} could both be the {field} column; choose one with --map {field}=HEADER",
                        headers[*a], headers[*b]
                    ))
                }
            }
        }
        if !slots.contains(&Some(Field::Tag)) {
            return Err(format!(
                "no asset tag column (looked for {}; name it with --map tag=HEADER)",
                Field::Tag.synonyms().join(", ")
            ));
        }
        Ok(slots)
    }
}

/// Header comparison key: lowercase letters and digits only, so `Asset_Tag`, `ASSET TAG` and
/// `Asset-Tag` agree. Falls back to the lowercased text when nothing is left (`#`).
pub fn normalize(header: &str) -> String {
    let key: String = header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    if key.is_empty() {
        header.trim().to_lowercase()
    } else {
        key
    }
}

/// A successful import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The assets, in file order.
    pub assets: Vec<Asset>,
    /// Which header fed which field, so the user can check the guesses.
    pub mapped_columns: Vec<(Field, String)>,
    /// Headers that fed nothing.
    pub ignored_columns: Vec<String>,
}

/// Reads and validates a CMMS CSV export.
pub fn load(path: &Path, map: &ColumnMap) -> Result<Import, ImportError> {
    let file = path.display().to_string();
    let text = read_text(path, &file)?;
    parse_str(&text, map, &file)
}

/// Cell values CMMS exports use for "nothing": better empty than a bogus value or an error
/// on every row.
const PLACEHOLDERS: [&str; 9] = [
    "-", "--", "n/a", "na", "none", "null", "unknown", "tbd", "?",
];

/// Parses and validates CSV text; `file_name` is used in error messages only.
pub fn parse_str(text: &str, map: &ColumnMap, file_name: &str) -> Result<Import, ImportError> {
    let mut reader = csv_reader(text, file_name)?;
    let headers = reader
        .headers()
        .map_err(|e| csv_error(file_name, &e))?
        .clone();
    let header_line = Some(headers.position().map_or(1, |p| p.line() as usize));
    let names: Vec<&str> = headers.iter().map(str::trim).collect();
    let slots = map
        .resolve(&names)
        .map_err(|m| ImportError::new(file_name, m).at(header_line, None))?;
    let column = |f: Field| slots.iter().position(|s| *s == Some(f));
    let mapped_columns = Field::ALL
        .into_iter()
        .filter_map(|f| Some((f, names.get(column(f)?)?.to_string())))
        .collect();
    let ignored_columns = names
        .iter()
        .zip(&slots)
        .filter(|(n, s)| s.is_none() && !n.is_empty())
        .map(|(n, _)| n.to_string())
        .collect();
    let index: HashMap<Field, usize> = Field::ALL
        .into_iter()
        .filter_map(|f| Some((f, column(f)?)))
        .collect();

    let mut assets = Vec::new();
    let mut errors = Vec::new();
    let mut tags: HashMap<String, usize> = HashMap::new();
    let mut macs: HashMap<MacAddr, (String, usize)> = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(file_name, &e))?;
        let line = record.position().map(|p| p.line() as usize);
        let cell = |f: Field| -> Option<String> {
            let v = record.get(*index.get(&f)?)?.trim();
            let placeholder =
                v.is_empty() || PLACEHOLDERS.iter().any(|p| v.eq_ignore_ascii_case(p));
            (!placeholder).then(|| v.to_owned())
        };
        let tag = index
            .get(&Field::Tag)
            .and_then(|&i| record.get(i))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        let mut fail = |message: String| {
            let about = (!tag.is_empty()).then(|| Record::Asset(tag.clone()));
            errors.push(
                ImportError::new(file_name, message)
                    .at(line, None)
                    .about(about),
            );
        };
        if tag.is_empty() {
            fail("empty asset tag".into());
            continue;
        }
        match tags.get(&tag) {
            Some(first) => fail(format!("duplicate asset tag: also on line {first}")),
            None => {
                tags.insert(tag.clone(), line.unwrap_or(0));
            }
        }
        let mac = cell(Field::Mac).and_then(|v| match parse_mac(&v) {
            Some(mac) => Some(mac),
            None => {
                fail(format!("mac: {v:?} is not a MAC address (expected e.g. 00:1b:2c:3d:4e:5f, 00-1B-2C-3D-4E-5F, 001b.2c3d.4e5f or 001b2c3d4e5f)"));
                None
            }
        });
        if let Some(mac) = mac {
            match macs.get(&mac) {
                Some((other, l)) => fail(format!(
                    "mac: {mac} is also the MAC of asset {other:?} (line {l})"
                )),
                None => {
                    macs.insert(mac, (tag.clone(), line.unwrap_or(0)));
                }
            }
        }
        let ip = cell(Field::Ip).and_then(|v| match v.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                fail(format!("ip: {v:?} is not an IP address"));
                None
            }
        });
        assets.push(Asset {
            tag,
            manufacturer: cell(Field::Manufacturer),
            model: cell(Field::Model),
            serial: cell(Field::Serial),
            mac,
            ip,
            hostname: cell(Field::Hostname),
            location: cell(Field::Location),
            department: cell(Field::Department),
            contract_id: cell(Field::ContractId),
            risk_class: cell(Field::RiskClass),
        });
    }
    let total = errors.len();
    match ImportError::collect(errors, total) {
        Some(e) => Err(e),
        None => Ok(Import {
            assets,
            mapped_columns,
            ignored_columns,
        }),
    }
}

/// The spellings CMMS exports and switch CLIs use: `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF`,
/// Cisco `aabb.ccdd.eeff` and bare `aabbccddeeff`.
pub fn parse_mac(s: &str) -> Option<MacAddr> {
    let s = s.trim();
    if s.contains([':', '-']) {
        return s.parse().ok();
    }
    let groups: Vec<&str> = s.split('.').collect();
    let grouping_ok = match groups.as_slice() {
        [one] => one.len() == 12,
        [a, b, c] => [a, b, c].iter().all(|g| g.len() == 4),
        _ => false,
    };
    if !grouping_ok {
        return None;
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 6];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(MacAddr(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/assets")
            .join(name)
    }

    fn import(text: &str, map: &ColumnMap) -> Result<Import, ImportError> {
        parse_str(text, map, "a.csv")
    }

    #[test]
    fn good_export_with_extra_columns() {
        let got = load(&data("good.csv"), &ColumnMap::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.assets.len(), 10);
        let first = &got.assets[0];
        assert_eq!(first.tag, "BME-004211");
        assert_eq!(first.manufacturer.as_deref(), Some("Siemens Healthineers"));
        assert_eq!(
            first.mac.map(|m| m.to_string()).as_deref(),
            Some("00:1b:2c:3d:4e:01")
        );
        assert_eq!(first.ip, "10.20.1.15".parse().ok());
        assert_eq!(first.contract_id.as_deref(), Some("C-1001"));
        assert_eq!(first.risk_class.as_deref(), Some("High"));
        assert!(got.assets.iter().all(|a| a.mac.is_some()));
        assert!(
            got.assets.iter().any(|a| a.ip.is_none()),
            "N/A is treated as empty"
        );
        for extra in [
            "Description",
            "PM Due",
            "Warranty End",
            "Purchase Cost",
            "Cost Center",
        ] {
            assert!(
                got.ignored_columns.iter().any(|c| c == extra),
                "{extra}: {:?}",
                got.ignored_columns
            );
        }
        assert!(got
            .mapped_columns
            .contains(&(Field::Tag, "Asset No".into())));
        assert!(got.mapped_columns.contains(&(Field::Serial, "S/N".into())));
    }

    #[test]
    fn semicolon_export_with_bom_equals_the_comma_one() {
        let map = ColumnMap::default();
        let semi = load(&data("good-semicolon.csv"), &map).unwrap_or_else(|e| panic!("{e}"));
        let comma = load(&data("good.csv"), &map).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(semi.assets, comma.assets[..semi.assets.len()]);
        assert!(semi.ignored_columns.contains(&"Beschreibung".to_owned()));
    }

    #[test]
    fn mac_spellings() {
        let want = Some(MacAddr([0x00, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]));
        for s in [
            "00:1b:2c:3d:4e:5f",
            "00-1B-2C-3D-4E-5F",
            "001b.2c3d.4e5f",
            "001B2C3D4E5F",
            " 001b2c3d4e5f ",
        ] {
            assert_eq!(parse_mac(s), want, "{s}");
        }
        for s in [
            "",
            "001b2c3d4e5",
            "001b.2c3d4e5f",
            "00:1b:2c:3d:4e",
            "zz1b2c3d4e5f",
            "00.1b.2c.3d.4e.5f",
            "0:1b:2c:3d:4e:5f",
            "ÿÿÿÿÿÿ",
        ] {
            assert_eq!(parse_mac(s), None, "{s}");
        }
    }

    #[test]
    fn headers_map_by_synonym_and_override() {
        let text = "Equip #,Serial_Number,MFR,IP-Address\nE1,S1,GE,10.0.0.1\n";
        assert!(import(text, &ColumnMap::default())
            .is_err_and(|e| e.to_string().starts_with("a.csv:1: no asset tag column")));
        let map = ColumnMap::with_overrides(&["tag=Equip #"]).unwrap_or_else(|e| panic!("{e}"));
        let got = import(text, &map).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.assets[0].tag, "E1");
        assert_eq!(got.assets[0].serial.as_deref(), Some("S1"));
        assert_eq!(got.assets[0].manufacturer.as_deref(), Some("GE"));
        assert!(got.ignored_columns.is_empty());
        // An override takes its column away from the synonyms.
        let map = ColumnMap::with_overrides(&["tag=serial number", "Serial=Equip #"])
            .unwrap_or_else(|e| panic!("{e}"));
        let got = import(text, &map).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (got.assets[0].tag.as_str(), got.assets[0].serial.as_deref()),
            ("S1", Some("E1"))
        );
    }

    #[test]
    fn map_errors() {
        assert_eq!(
            ColumnMap::with_overrides(&["colour=Farbe"]),
            Err(MapError::UnknownField("colour".into()))
        );
        assert_eq!(
            ColumnMap::with_overrides(&["tag"]),
            Err(MapError::Syntax("tag".into()))
        );
        assert_eq!(
            ColumnMap::with_overrides(&["tag="]),
            Err(MapError::Syntax("tag=".into()))
        );
        assert_eq!(
            ColumnMap::with_overrides(&["tag=A", "TAG=B"]),
            Err(MapError::Duplicate(Field::Tag))
        );
        // As clap hands them over.
        let specs: Vec<String> = vec!["Contract-ID=Vertrag".into()];
        assert!(ColumnMap::with_overrides(&specs).is_ok());
        let map = ColumnMap::with_overrides(&["tag=Nope"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(import("Asset Tag\nA\n", &map).is_err_and(|e| e.message.contains("no such column")));
    }

    #[test]
    fn ambiguous_synonyms_ask_for_map() {
        let e = import("Asset Tag,Control Number\nA,B\n", &ColumnMap::default()).err();
        assert!(e.is_some_and(|e| e.message.contains("--map tag=HEADER")));
    }

    #[test]
    fn problems_are_all_reported_with_lines() {
        let text = "tag,mac,ip\nA,00:00:00:00:00:01,10.0.0.1\nA,,\n,,\nB,00-00-00-00-00-01,\nC,zz,10.0.0.300\n";
        let e = import(text, &ColumnMap::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let want = [
            "a.csv:3: asset \"A\": duplicate asset tag: also on line 2",
            "a.csv:4: empty asset tag",
            "a.csv:5: asset \"B\": mac: 00:00:00:00:00:01 is also the MAC of asset \"A\" (line 2)",
            "a.csv:6: asset \"C\": mac: \"zz\" is not a MAC address",
            "a.csv:6: asset \"C\": ip: \"10.0.0.300\" is not an IP address",
        ];
        for w in want {
            assert!(e.contains(w), "want {w:?} in\n{e}");
        }
    }

    #[test]
    fn an_unclosed_quote_does_not_swallow_the_rest_of_the_export() {
        let text = "tag,location\nA,ICU 1\nB,\"ICU 2\nC,ICU 3\n";
        let e = import(text, &ColumnMap::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("a.csv:3:3: unterminated quote"), "{e}");
        // Quoted fields spanning lines are fine when closed.
        let text = "tag;location\nA;\"ICU 1\nbed 2\"\nB;\"ICU \"\"B\"\"\"\n";
        let got = import(text, &ColumnMap::default()).unwrap_or_else(|e| panic!("{e}"));
        let locations: Vec<_> = got.assets.iter().map(|a| a.location.as_deref()).collect();
        assert_eq!(locations, [Some("ICU 1\nbed 2"), Some("ICU \"B\"")]);
    }

    proptest::proptest! {
        // Each case re-parses whole files (and probes on error): 64 cases keep `cargo test` quick.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Damaged exports are refused, never a panic: splice junk into the good ones.
        #[test]
        fn damaged_exports_never_panic(at in 0usize..2500, cut in 0usize..8, junk in "[,;\"\n:.a-f0-9 ]{0,8}") {
            for name in ["good.csv", "good-semicolon.csv"] {
                let text = std::fs::read_to_string(data(name)).unwrap_or_default();
                let damaged = crate::import::testing::splice(&text, at, cut, &junk);
                if let Err(e) = parse_str(&damaged, &ColumnMap::default(), name) {
                    proptest::prop_assert!(e.to_string().starts_with(name));
                }
            }
        }
    }

    /// Every bad file fails, naming itself and a line, with the expected complaint.
    #[test]
    fn bad_files() {
        let expected: &[(&str, &str)] = &[
            ("bad-no-tag-column.csv", "no asset tag column"),
            ("bad-empty-tag.csv", "empty asset tag"),
            (
                "bad-duplicate-tag.csv",
                "duplicate asset tag: also on line 3",
            ),
            ("bad-mac.csv", "\"00:1B:2C:3D:4E\" is not a MAC address"),
            ("bad-ip.csv", "\"10.20.1.256\" is not an IP address"),
            (
                "bad-duplicate-mac.csv",
                "is also the MAC of asset \"BME-1002\" (line 3)",
            ),
            (
                "bad-row-length.csv",
                "row has 5 fields but the header has 6",
            ),
            ("bad-ambiguous.csv", "could both be the tag column"),
            (
                "bad-unterminated-quote.csv",
                "bad-unterminated-quote.csv:3:53: unterminated quote",
            ),
            (
                "bad-eof-in-quote.csv",
                "bad-eof-in-quote.csv:3:35: unterminated quote",
            ),
            (
                "bad-stray-quote.csv",
                "bad-stray-quote.csv:3:28: stray quote",
            ),
            (
                "bad-text-after-quote.csv",
                "bad-text-after-quote.csv:3:30: text after the closing quote",
            ),
        ];
        let dir = data("");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        let mut seen = 0;
        for path in paths {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if !name.starts_with("bad-") {
                continue;
            }
            seen += 1;
            let e = match load(&path, &ColumnMap::default()) {
                Ok(got) => panic!("{name} accepted: {got:?}"),
                Err(e) => e,
            };
            let text = e.to_string();
            assert!(
                e.line
                    .is_some_and(|l| text.contains(&format!("{name}:{l}"))),
                "{name}: {text}"
            );
            let want = expected.iter().find(|(n, _)| *n == name).map(|(_, w)| *w);
            let want = want.unwrap_or_else(|| panic!("{name}: add it to the expectation table"));
            assert!(text.contains(want), "{name}: want {want:?} in {text}");
        }
        assert_eq!(seen, expected.len());
    }
}
