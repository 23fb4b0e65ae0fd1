//! The flag kinds: each one's wire name, severity and scope, in one table.
//!
//! The wire name is what the database, the API (`?kind=`, `flag_kinds`), alerts, reports,
//! `/metrics` and `openapi.json` carry; renaming one orphans every stored flag of that kind, so a
//! name is never changed, only added (or retired: stored rows keep their text, see
//! [`crate::store::FlagRow`]).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// How urgent a flag is. Serialized and stored as `high`, `medium`, `low`, `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Act now: the device is outside its support or its contract's security terms.
    High,
    /// Act soon: coverage, register or terms need attention.
    Medium,
    /// Worth knowing: a vulnerability of low CVSS severity, or an advisory whose versions
    /// cannot be compared with the device's.
    Low,
    /// For review: nothing is wrong yet (a software change to check against the patch SLA).
    Info,
}

impl Severity {
    /// Every severity, most urgent first.
    pub const ALL: &'static [Severity] = &[
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    /// The stored and serialized name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a flag is about: its subject, and which function of [`super`] raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// A device (subject `device:<id>`), as a whole: its cover, its register entry, its
    /// software, its support dates, where it is seen, whom it talks to ([`super::device`]).
    Device,
    /// One service of a device (subject `device:<id>`, detail `<transport>/<port>/<direction>`)
    /// against the terms of the contract that covers the device ([`super::service`]).
    Service,
    /// A contract (subject `contract:<id>`) and the devices linked to it ([`super::contract`]).
    Contract,
    /// A row of the asset register (subject `asset:<tag>`) ([`super::asset`]).
    Asset,
    /// A device against one security advisory (subject `device:<id>`, detail the advisory's
    /// `tracking.id`) ([`super::advisory`]).
    Advisory,
}

impl Scope {
    /// The subject of a flag of this scope about `id` (device id, contract id or asset tag).
    pub fn subject(self, id: impl fmt::Display) -> String {
        match self {
            Scope::Device | Scope::Service | Scope::Advisory => format!("device:{id}"),
            Scope::Contract => format!("contract:{id}"),
            Scope::Asset => format!("asset:{id}"),
        }
    }
}

macro_rules! flag_kinds {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $severity:ident, $scope:ident; )*) => {
        /// A flag kind. Adding one: see the module documentation of [`super`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum FlagKind {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )*
        }

        impl FlagKind {
            /// Every kind, in the order the README lists them.
            pub const ALL: &'static [FlagKind] = &[$(FlagKind::$variant,)*];

            /// The wire name (database, API, alerts, reports, metrics).
            pub const fn name(self) -> &'static str {
                match self { $( FlagKind::$variant => $name, )* }
            }

            /// How urgent a flag of this kind is: every flag's, except a kind
            /// [`FlagKind::graded`] by its evidence, where it is the most urgent a flag can be.
            pub const fn severity(self) -> Severity {
                match self { $( FlagKind::$variant => Severity::$severity, )* }
            }

            /// What a flag of this kind is about.
            pub const fn scope(self) -> Scope {
                match self { $( FlagKind::$variant => Scope::$scope, )* }
            }
        }

        /// Every kind's wire name, in [`FlagKind::ALL`] order (for `/metrics` and tests).
        pub const KINDS: &[&str] = &[$($name,)*];
    };
}

flag_kinds! {
    /// The end-of-support date of the contract covering the device is before the evaluation
    /// date.
    EndOfSupportPassed => "end_of_support_passed", High, Device;
    /// End of support is today or within `end_of_support_warning_days` (180) days.
    EndOfSupportWithin => "end_of_support_within", Medium, Device;
    /// No contract in force covers the device: a medical device never covered, or any device
    /// whose contract has ended (the evidence names it and its end date).
    NoContract => "no_contract", Medium, Device;
    /// A medical device that no asset-register row matches.
    NotInAssetRegister => "not_in_asset_register", Medium, Device;
    /// An asset-register row no device linked to it was seen for `asset_not_seen_days` (30).
    AssetNotSeen => "asset_not_seen", Medium, Asset;
    /// A service the covering contract's `permitted_services` does not list.
    ServiceNotPermitted => "service_not_permitted", High, Service;
    /// A patient-data protocol in clear while the contract requires encryption in transit.
    CleartextPhiProtocol => "cleartext_phi_protocol", High, Service;
    /// A remote-access port used with peers the contract's remote-access policy excludes.
    RemoteAccessNotPermitted => "remote_access_not_permitted", High, Service;
    /// Peers outside the hospital's networks while the contract permits no external
    /// communication.
    ExternalCommunicationNotPermitted => "external_communication_not_permitted", High, Device;
    /// A software version the covering contract does not list as supported.
    SoftwareVersionUnsupported => "software_version_unsupported", Medium, Device;
    /// More devices linked to a contract than its `quantity`.
    OverContractedQuantity => "over_contracted_quantity", Medium, Contract;
    /// Seen at a site or on a VLAN the covering contract does not permit.
    SegmentNotPermitted => "segment_not_permitted", Medium, Device;
    /// The software version changed within `software_change_window_days` (30).
    SoftwareChanged => "software_changed", Info, Device;
    /// The device runs a version an imported security advisory lists as affected; the flag's
    /// severity is the highest CVSS base severity of the advisory's CVEs for that product.
    VulnerableSoftware => "vulnerable_software", High, Advisory;
    /// One of those CVEs is in CISA's Known Exploited Vulnerabilities catalog.
    KnownExploitedVulnerability => "known_exploited_vulnerability", High, Advisory;
    /// A vendor fix has existed for longer than the covering contract's `patch_sla_days` (for
    /// the CVSS severity) and the device still runs an affected version.
    PatchOverdue => "patch_overdue", High, Advisory;
    /// The advisory is older than the contract's `patch_sla_days` and the supplier has still
    /// published no fix for the device's product: the supplier's obligation.
    VendorFixOverdue => "vendor_fix_overdue", Medium, Advisory;
    /// The advisory puts the device's product in a CSAF `legacy` branch: end of life, no fix
    /// will come.
    EndOfLifeProduct => "end_of_life_product", High, Advisory;
    /// The device matches an advisory's product but its version cannot be compared with the
    /// advisory's (or none was seen): neither vulnerable nor cleared, for a person to check.
    AdvisoryVersionNotComparable => "advisory_version_not_comparable", Low, Advisory;
}

impl FlagKind {
    /// Whether a flag's severity comes from its evidence (the CVSS severity) rather than from
    /// the kind: then [`FlagKind::severity`] is the most urgent it can be.
    pub const fn graded(self) -> bool {
        matches!(self, FlagKind::VulnerableSoftware)
    }
}

impl fmt::Display for FlagKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A stored or requested kind name that is no [`FlagKind`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown flag kind {name:?}")]
pub struct UnknownFlagKind {
    /// The name, cut to 64 characters (it may come from a request).
    pub name: String,
}

impl FromStr for FlagKind {
    type Err = UnknownFlagKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FlagKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownFlagKind {
                name: s.chars().take(64).collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_are_unique() {
        for k in FlagKind::ALL {
            assert_eq!(k.name().parse::<FlagKind>(), Ok(*k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
        let names: std::collections::BTreeSet<_> = KINDS.iter().collect();
        assert_eq!(names.len(), FlagKind::ALL.len());
        assert_eq!(
            KINDS,
            FlagKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>()
        );
        let long = "x".repeat(1000);
        let e = long.parse::<FlagKind>().unwrap_err();
        assert_eq!(e.name.len(), 64);
        assert_eq!(
            "No_Contract".parse::<FlagKind>().unwrap_err().to_string(),
            "unknown flag kind \"No_Contract\""
        );
    }

    /// The wire names are the ones the API, database, alerts and README have always used.
    #[test]
    fn wire_names_are_the_documented_ones() {
        assert_eq!(
            KINDS,
            [
                "end_of_support_passed",
                "end_of_support_within",
                "no_contract",
                "not_in_asset_register",
                "asset_not_seen",
                "service_not_permitted",
                "cleartext_phi_protocol",
                "remote_access_not_permitted",
                "external_communication_not_permitted",
                "software_version_unsupported",
                "over_contracted_quantity",
                "segment_not_permitted",
                "software_changed",
                "vulnerable_software",
                "known_exploited_vulnerability",
                "patch_overdue",
                "vendor_fix_overdue",
                "end_of_life_product",
                "advisory_version_not_comparable",
            ]
        );
        for s in Severity::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn scope_names_the_subject() {
        assert_eq!(Scope::Device.subject(7), "device:7");
        assert_eq!(Scope::Service.subject(7), "device:7");
        assert_eq!(Scope::Contract.subject("C-1"), "contract:C-1");
        assert_eq!(Scope::Asset.subject("BME-1"), "asset:BME-1");
        assert_eq!(Scope::Advisory.subject(7), "device:7");
    }
}
