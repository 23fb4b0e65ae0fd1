//! Well-known SOP classes (PS3.4 Annex B and friends): UID → display name and what proposing or
//! accepting the class says about a host's role.
//!
//! The table is a sorted static slice searched by binary search: it is read for every proposed
//! presentation context (a modality may propose 100+), and a slice keeps the data reviewable in
//! one place.

/// What a SOP class is used for, as far as guessing a host's role goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SopKind {
    /// C-ECHO; every DICOM node supports it, so it says little about the acceptor.
    Verification,
    /// Storage of images or data produced by an acquisition device (CT, MR, US, DX, ECG, RT…).
    ModalityStorage,
    /// Other storage: derived or document objects (secondary capture, SR, PDF, presentation states).
    Storage,
    /// Modality Worklist C-FIND.
    Worklist,
    /// Modality Performed Procedure Step.
    Mpps,
    /// Query/Retrieve information models (FIND, MOVE, GET).
    QueryRetrieve,
    /// Storage Commitment Push Model.
    StorageCommitment,
    /// Instance Availability Notification.
    InstanceAvailability,
    /// Unified Procedure Step.
    Ups,
    /// Print management meta SOP classes (a modality printing to film).
    Print,
}

impl SopKind {
    /// Role hint for the host that proposes (requests) this class in an A-ASSOCIATE-RQ.
    pub const fn requestor_role(self) -> &'static str {
        match self {
            SopKind::Verification => "verification",
            SopKind::ModalityStorage => "modality_storage_scu",
            SopKind::Storage => "storage_scu",
            SopKind::Worklist => "worklist_scu",
            SopKind::Mpps => "mpps_scu",
            SopKind::QueryRetrieve => "query_retrieve_scu",
            SopKind::StorageCommitment => "storage_commitment_scu",
            SopKind::InstanceAvailability => "instance_availability_scu",
            SopKind::Ups => "ups_scu",
            SopKind::Print => "print_scu",
        }
    }

    /// Role hint for the host that accepts this class in an A-ASSOCIATE-AC, if accepting it is
    /// telling (everything accepts Verification, so that says nothing).
    pub const fn acceptor_role(self) -> Option<&'static str> {
        match self {
            SopKind::Verification => None,
            SopKind::ModalityStorage | SopKind::Storage => Some("storage_scp"),
            SopKind::Worklist => Some("worklist_scp"),
            SopKind::Mpps => Some("mpps_scp"),
            SopKind::QueryRetrieve => Some("query_retrieve_scp"),
            SopKind::StorageCommitment => Some("storage_commitment_scp"),
            SopKind::InstanceAvailability => Some("instance_availability_scp"),
            SopKind::Ups => Some("ups_scp"),
            SopKind::Print => Some("print_scp"),
        }
    }

    /// Whether the class is a storage class (C-STORE carries its instances).
    pub const fn is_storage(self) -> bool {
        matches!(self, SopKind::ModalityStorage | SopKind::Storage)
    }
}

/// One well-known SOP class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SopClass {
    /// The SOP class UID.
    pub uid: &'static str,
    /// Its name as in PS3.6 Annex A.
    pub name: &'static str,
    /// What it is used for.
    pub kind: SopKind,
}

/// Looks up a SOP class UID (exact match; callers strip padding first).
pub fn lookup(uid: &str) -> Option<&'static SopClass> {
    TABLE
        .binary_search_by(|c| c.uid.cmp(uid))
        .ok()
        .and_then(|i| TABLE.get(i))
}

/// Whether `uid` is a Query/Retrieve GET information model. Storage contexts proposed next to one
/// exist so the requestor can *receive* C-STORE sub-operations, which reverses the storage roles.
pub fn is_get_model(uid: &str) -> bool {
    matches!(
        uid,
        "1.2.840.10008.5.1.4.1.2.1.3"
            | "1.2.840.10008.5.1.4.1.2.2.3"
            | "1.2.840.10008.5.1.4.1.2.3.3"
            | "1.2.840.10008.5.1.4.1.2.4.3"
    )
}

const fn sop(uid: &'static str, name: &'static str, kind: SopKind) -> SopClass {
    SopClass { uid, name, kind }
}

use SopKind::{
    InstanceAvailability as Avail, ModalityStorage as Modality, Mpps, Print, QueryRetrieve as Qr,
    Storage, StorageCommitment as Commit, Ups, Verification, Worklist,
};

/// Sorted by UID as a byte string (checked by a test), which is what `binary_search_by` needs.
/// One line per class so the table reads like PS3.6 Annex A.
#[rustfmt::skip]
static TABLE: &[SopClass] = &[
    sop("1.2.840.10008.1.1", "Verification", Verification),
    sop("1.2.840.10008.1.20.1", "Storage Commitment Push Model", Commit),
    sop("1.2.840.10008.3.1.2.3.3", "Modality Performed Procedure Step", Mpps),
    sop("1.2.840.10008.5.1.1.18", "Basic Color Print Management Meta", Print),
    sop("1.2.840.10008.5.1.1.9", "Basic Grayscale Print Management Meta", Print),
    sop("1.2.840.10008.5.1.4.1.1.1", "Computed Radiography Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.1.1", "Digital X-Ray Image Storage - For Presentation", Modality),
    sop("1.2.840.10008.5.1.4.1.1.1.1.1", "Digital X-Ray Image Storage - For Processing", Modality),
    sop("1.2.840.10008.5.1.4.1.1.1.2", "Digital Mammography X-Ray Image Storage - For Presentation", Modality),
    sop("1.2.840.10008.5.1.4.1.1.1.2.1", "Digital Mammography X-Ray Image Storage - For Processing", Modality),
    sop("1.2.840.10008.5.1.4.1.1.1.3", "Digital Intra-Oral X-Ray Image Storage - For Presentation", Modality),
    sop("1.2.840.10008.5.1.4.1.1.1.3.1", "Digital Intra-Oral X-Ray Image Storage - For Processing", Modality),
    sop("1.2.840.10008.5.1.4.1.1.104.1", "Encapsulated PDF Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.104.2", "Encapsulated CDA Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.11.1", "Grayscale Softcopy Presentation State Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.12.1", "X-Ray Angiographic Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.12.1.1", "Enhanced XA Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.12.2", "X-Ray Radiofluoroscopic Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.12.2.1", "Enhanced XRF Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.128", "Positron Emission Tomography Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.13.1.3", "Breast Tomosynthesis Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.130", "Enhanced PET Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.2", "CT Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.2.1", "Enhanced CT Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.20", "Nuclear Medicine Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.3.1", "Ultrasound Multi-frame Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.4", "MR Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.4.1", "Enhanced MR Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.4.2", "MR Spectroscopy Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.481.1", "RT Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.481.2", "RT Dose Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.481.3", "RT Structure Set Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.481.4", "RT Beams Treatment Record Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.481.5", "RT Plan Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.481.8", "RT Ion Plan Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.6.1", "Ultrasound Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.6.2", "Enhanced US Volume Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.66", "Raw Data Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.66.4", "Segmentation Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.7", "Secondary Capture Image Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.7.1", "Multi-frame Single Bit Secondary Capture Image Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.7.2", "Multi-frame Grayscale Byte Secondary Capture Image Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.7.3", "Multi-frame Grayscale Word Secondary Capture Image Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.7.4", "Multi-frame True Color Secondary Capture Image Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.77.1.1", "VL Endoscopic Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.77.1.4", "VL Photographic Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.77.1.5.1", "Ophthalmic Photography 8 Bit Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.77.1.5.4", "Ophthalmic Tomography Image Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.88.11", "Basic Text SR Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.88.22", "Enhanced SR Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.88.33", "Comprehensive SR Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.88.34", "Comprehensive 3D SR Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.88.59", "Key Object Selection Document Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.88.67", "X-Ray Radiation Dose SR Storage", Storage),
    sop("1.2.840.10008.5.1.4.1.1.9.1.1", "12-lead ECG Waveform Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.9.1.2", "General ECG Waveform Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.1.9.2.1", "Hemodynamic Waveform Storage", Modality),
    sop("1.2.840.10008.5.1.4.1.2.1.1", "Patient Root Query/Retrieve Information Model - FIND", Qr),
    sop("1.2.840.10008.5.1.4.1.2.1.2", "Patient Root Query/Retrieve Information Model - MOVE", Qr),
    sop("1.2.840.10008.5.1.4.1.2.1.3", "Patient Root Query/Retrieve Information Model - GET", Qr),
    sop("1.2.840.10008.5.1.4.1.2.2.1", "Study Root Query/Retrieve Information Model - FIND", Qr),
    sop("1.2.840.10008.5.1.4.1.2.2.2", "Study Root Query/Retrieve Information Model - MOVE", Qr),
    sop("1.2.840.10008.5.1.4.1.2.2.3", "Study Root Query/Retrieve Information Model - GET", Qr),
    sop("1.2.840.10008.5.1.4.1.2.3.1", "Patient/Study Only Query/Retrieve Information Model - FIND (Retired)", Qr),
    sop("1.2.840.10008.5.1.4.1.2.3.2", "Patient/Study Only Query/Retrieve Information Model - MOVE (Retired)", Qr),
    sop("1.2.840.10008.5.1.4.1.2.3.3", "Patient/Study Only Query/Retrieve Information Model - GET (Retired)", Qr),
    sop("1.2.840.10008.5.1.4.1.2.4.2", "Composite Instance Root Retrieve - MOVE", Qr),
    sop("1.2.840.10008.5.1.4.1.2.4.3", "Composite Instance Root Retrieve - GET", Qr),
    sop("1.2.840.10008.5.1.4.31", "Modality Worklist Information Model - FIND", Worklist),
    sop("1.2.840.10008.5.1.4.33", "Instance Availability Notification", Avail),
    sop("1.2.840.10008.5.1.4.34.6.1", "Unified Procedure Step - Push", Ups),
    sop("1.2.840.10008.5.1.4.34.6.2", "Unified Procedure Step - Watch", Ups),
    sop("1.2.840.10008.5.1.4.34.6.3", "Unified Procedure Step - Pull", Ups),
    sop("1.2.840.10008.5.1.4.34.6.4", "Unified Procedure Step - Event", Ups),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in TABLE.windows(2) {
            assert!(
                pair[0].uid < pair[1].uid,
                "{} !< {}",
                pair[0].uid,
                pair[1].uid
            );
        }
    }

    #[test]
    fn every_entry_is_found() {
        for c in TABLE {
            assert_eq!(lookup(c.uid), Some(c));
        }
        assert_eq!(
            lookup("1.2.840.10008.5.1.4.1.1.2").map(|c| c.name),
            Some("CT Image Storage")
        );
        assert_eq!(lookup("1.2.840.10008.5.1.4.1.1.2.9"), None);
        assert_eq!(lookup(""), None);
    }

    #[test]
    fn role_vocabulary() {
        let ct = lookup("1.2.840.10008.5.1.4.1.1.2").map(|c| c.kind);
        assert_eq!(
            ct.map(SopKind::requestor_role),
            Some("modality_storage_scu")
        );
        assert_eq!(ct.and_then(SopKind::acceptor_role), Some("storage_scp"));
        let mwl = lookup("1.2.840.10008.5.1.4.31").map(|c| c.kind);
        assert_eq!(mwl.map(SopKind::requestor_role), Some("worklist_scu"));
        assert_eq!(SopKind::Verification.acceptor_role(), None);
        assert!(is_get_model("1.2.840.10008.5.1.4.1.2.2.3"));
        assert!(!is_get_model("1.2.840.10008.5.1.4.1.2.2.2"));
    }
}
