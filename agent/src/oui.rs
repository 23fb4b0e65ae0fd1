//! The IEEE MAC address block registry: which organisation a MAC address prefix is assigned to.
//!
//! The registry is bundled as `agent/data/oui.tsv` (generated from the IEEE MA-L, MA-M, MA-S and
//! IAB registries by `agent/data/refresh-oui.sh`; see `agent/data/REFRESH.md`). Each line is
//! `HEX<TAB>Organisation`, where HEX has 6 (MA-L, 24-bit), 7 (MA-M, 28-bit) or 9 (MA-S and IAB,
//! 36-bit) hex digits; `#` lines are comments.
//!
//! Parsing borrows every name from the `'static` text (no per-entry allocation) into three
//! sorted tables, one per prefix length, and [`OuiRegistry::lookup`] binary-searches them longest
//! prefix first. A locally administered address (bit 0x02 of the first octet) is assigned by
//! software, often randomised, so its "OUI" names nobody and lookup returns `None`.

use std::sync::OnceLock;

use ward_protocols::MacAddr;

/// The bundled registry text.
const BUNDLED_TSV: &str = include_str!("../data/oui.tsv");

/// Prefix lengths in bits, longest first: MA-S/IAB, MA-M, MA-L.
const LENGTHS: [u8; 3] = [36, 28, 24];

/// A parsed registry: assignments by prefix length, each table sorted by prefix.
#[derive(Debug, Clone, Default)]
pub struct OuiRegistry {
    /// `tables[i]` holds the prefixes of `LENGTHS[i]` bits, sorted, unique.
    tables: [Vec<Entry>; 3],
}

/// One assignment: the top `bits` bits of a MAC address, right-aligned, and its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    prefix: u64,
    name: &'static str,
}

/// A malformed registry line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OUI registry line {line}: {what}")]
pub struct OuiError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

impl OuiRegistry {
    /// The registry bundled into the binary, parsed on first use.
    pub fn bundled() -> &'static OuiRegistry {
        static REGISTRY: OnceLock<OuiRegistry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            // The bundled file is checked by a unit test; should it ever be broken, an empty
            // registry (every lookup `None`) is better than a crash in the capture path.
            OuiRegistry::from_tsv(BUNDLED_TSV).unwrap_or_else(|e| {
                tracing::error!(error = %e, "bundled OUI registry is malformed");
                OuiRegistry::default()
            })
        })
    }

    /// Parses registry text in the `oui.tsv` format. Lines need not be sorted; a prefix listed
    /// twice keeps its first name.
    pub fn from_tsv(text: &'static str) -> Result<OuiRegistry, OuiError> {
        let mut tables: [Vec<Entry>; 3] = Default::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |what: String| OuiError { line: i + 1, what };
            let (hex, name) = line
                .split_once('\t')
                .ok_or_else(|| err("expected HEX<TAB>organisation".to_owned()))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(err(format!("assignment {hex} has no organisation name")));
            }
            let slot = match hex.len() {
                9 => 0,
                7 => 1,
                6 => 2,
                n => {
                    return Err(err(format!(
                        "assignment {hex:?} has {n} hex digits (expected 6, 7 or 9)"
                    )))
                }
            };
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(format!("assignment {hex:?} is not hexadecimal")));
            }
            let prefix = u64::from_str_radix(hex, 16)
                .map_err(|e| err(format!("assignment {hex:?}: {e}")))?;
            if let Some(table) = tables.get_mut(slot) {
                table.push(Entry { prefix, name });
            }
        }
        for table in &mut tables {
            if !table
                .windows(2)
                .all(|w| matches!(w, [a, b] if a.prefix < b.prefix))
            {
                // Stable, so the first of duplicate prefixes stays first and survives dedup.
                table.sort_by_key(|e| e.prefix);
                table.dedup_by_key(|e| e.prefix);
            }
        }
        Ok(OuiRegistry { tables })
    }

    /// Organisation the address block containing `mac` is assigned to, longest prefix first
    /// (MA-S/IAB 36 bits, then MA-M 28 bits, then MA-L 24 bits). `None` for locally administered
    /// addresses and unassigned blocks.
    pub fn lookup(&self, mac: MacAddr) -> Option<&str> {
        if is_locally_administered(mac) {
            return None;
        }
        let value = mac_to_u64(mac);
        LENGTHS
            .iter()
            .zip(&self.tables)
            .find_map(|(&bits, table)| {
                let key = value >> (48 - u32::from(bits));
                table
                    .binary_search_by_key(&key, |e| e.prefix)
                    .ok()
                    .and_then(|i| table.get(i))
            })
            .map(|e| e.name)
    }

    /// Number of assignments (all prefix lengths).
    pub fn len(&self) -> usize {
        self.tables.iter().map(Vec::len).sum()
    }

    /// Whether the registry has no assignments.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `mac` is locally administered (U/L bit, 0x02 of the first octet): assigned by
/// software, often randomised, so its first three octets identify no manufacturer.
pub fn is_locally_administered(mac: MacAddr) -> bool {
    mac.0[0] & 0x02 != 0
}

/// Whether `mac` is a group (multicast or broadcast) address (I/G bit, 0x01 of the first octet).
pub fn is_multicast(mac: MacAddr) -> bool {
    mac.0[0] & 0x01 != 0
}

fn mac_to_u64(mac: MacAddr) -> u64 {
    mac.0.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bundled_registry_parses_and_is_complete() {
        let reg = OuiRegistry::from_tsv(BUNDLED_TSV).expect("bundled oui.tsv parses");
        // MA-L alone has ~32k assignments; all three tables must be populated.
        assert!(reg.len() > 40_000, "{}", reg.len());
        assert!(reg.tables.iter().all(|t| !t.is_empty()));
        for table in &reg.tables {
            assert!(table.windows(2).all(|w| w[0].prefix < w[1].prefix));
        }
        assert_eq!(OuiRegistry::bundled().len(), reg.len());
    }

    #[test]
    fn medical_ouis_resolve_to_their_registry_names() {
        let reg = OuiRegistry::bundled();
        let cases = [
            ("00:09:fb:01:02:03", "Philips Patient Monitoring"),
            (
                "00:09:5c:01:02:03",
                "Philips Medical Systems - Cardiac and Monitoring Systems (CM",
            ),
            ("08:00:19:0b:40:20", "GENERAL ELECTRIC CORPORATION"),
            ("44:4b:5d:01:02:03", "GE Healthcare"),
            ("00:a0:37:9a:00:53", "Mindray DS USA, Inc."),
            ("00:0f:14:01:02:03", "Mindray Co., Ltd."),
            ("00:10:5d:01:02:03", "Draeger Medical"),
            ("00:30:e6:01:02:03", "Draeger Medical Systems, Inc."),
            ("f0:e5:c3:01:02:03", "Drägerwerk AG & Co. KG aA"),
            ("00:12:21:aa:bb:01", "B.Braun Melsungen AG"),
            ("00:a0:aa:01:02:03", "SPACELABS MEDICAL"),
            ("00:a0:9a:01:02:03", "NIHON KOHDEN AMERICA"),
            ("00:b0:94:01:02:03", "Alaris, Inc."),
            ("00:d0:75:01:02:03", "ALARIS MEDICAL SYSTEMS, INC."),
            ("f8:c6:78:01:02:03", "Carefusion"),
            ("9c:c8:ae:01:02:03", "Becton, Dickinson and Company"),
            ("58:42:e4:01:02:03", "Baxter International Inc"),
            ("58:46:e1:01:02:03", "Baxter International Inc"),
            ("00:03:b1:01:02:03", "ICU Medical, Inc."),
            ("00:1a:fa:01:02:03", "Welch Allyn, Inc."),
            ("00:14:b8:01:02:03", "Hill-Rom"),
        ];
        for (m, want) in cases {
            assert_eq!(reg.lookup(mac(m)), Some(want), "{m}");
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let reg = OuiRegistry::bundled();
        // 70:B3:D5 and 00:50:C2 are MA-L blocks the IEEE RA carves MA-S and IAB assignments
        // out of: the 36-bit assignment wins over the 24-bit holder.
        assert_eq!(
            reg.lookup(mac("70:b3:d5:f2:f1:23")),
            Some("TELEPLATFORMS"),
            "MA-S 70B3D5F2F"
        );
        assert_eq!(
            reg.lookup(mac("00:50:c2:00:0a:bc")),
            Some("T.L.S. Corp."),
            "IAB 0050C2000"
        );
        let mut tables = reg.tables.clone();
        tables[0].clear();
        let without_36_bit = OuiRegistry { tables };
        assert_eq!(
            without_36_bit.lookup(mac("70:b3:d5:f2:f1:23")),
            Some("IEEE Registration Authority")
        );
        let synthetic = OuiRegistry::from_tsv(
            "# test\nAABBCC\tLarge\nAABBCCD\tMedium\nAABBCCDDE\tSmall\n\nAABBCC\tDuplicate\n",
        )
        .unwrap();
        assert_eq!(synthetic.len(), 3);
        assert_eq!(synthetic.lookup(mac("aa:bb:cc:dd:ee:ff")), None, "local");
        let synthetic =
            OuiRegistry::from_tsv("A8BBCC\tLarge\nA8BBCCD\tMedium\nA8BBCCDDE\tSmall\n").unwrap();
        assert_eq!(synthetic.lookup(mac("a8:bb:cc:dd:ef:00")), Some("Small"));
        assert_eq!(synthetic.lookup(mac("a8:bb:cc:d0:00:00")), Some("Medium"));
        assert_eq!(synthetic.lookup(mac("a8:bb:cc:00:00:00")), Some("Large"));
        assert_eq!(synthetic.lookup(mac("a8:bb:cd:00:00:00")), None);
    }

    #[test]
    fn unsorted_input_is_sorted_and_first_duplicate_kept() {
        let reg = OuiRegistry::from_tsv("0C0000\tB\n040000\tA\n0C0000\tC\r\n").unwrap();
        assert_eq!(reg.len(), 2);
        assert_eq!(reg.lookup(mac("0c:00:00:00:00:01")), Some("B"));
        assert_eq!(reg.lookup(mac("04:00:00:00:00:01")), Some("A"));
    }

    #[test]
    fn locally_administered_and_multicast_bits() {
        let reg = OuiRegistry::bundled();
        // 02:12:21… has the U/L bit set: randomised, the B. Braun OUI means nothing here.
        let local = mac("02:12:21:aa:bb:01");
        assert!(is_locally_administered(local));
        assert_eq!(reg.lookup(local), None);
        assert!(!is_locally_administered(mac("00:12:21:aa:bb:01")));
        assert!(is_locally_administered(mac("da:a1:19:00:00:01")));
        assert!(is_multicast(mac("01:00:5e:00:00:fb")));
        assert!(is_multicast(mac("ff:ff:ff:ff:ff:ff")));
        assert!(!is_multicast(mac("00:12:21:aa:bb:01")));
    }

    #[test]
    fn malformed_lines_are_reported_with_line_numbers() {
        let e = OuiRegistry::from_tsv("# ok\n001221\tB. Braun\n00122\tShort\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().contains("5 hex digits"), "{e}");
        let e = OuiRegistry::from_tsv("00122G\tBad\n").unwrap_err();
        assert_eq!((e.line, e.what.contains("not hexadecimal")), (1, true));
        let e = OuiRegistry::from_tsv("001221 B. Braun\n").unwrap_err();
        assert!(e.what.contains("TAB"), "{e}");
        let e = OuiRegistry::from_tsv("001221\t \n").unwrap_err();
        assert!(e.what.contains("no organisation"), "{e}");
    }
}
