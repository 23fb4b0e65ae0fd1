//! HL7 FHIR (R4/R5) over HTTP: the identity a device gives of itself in a `Device` or
//! `DeviceDefinition` resource it sends.
//!
//! FHIR rides on HTTP, so it is not found by a probe of its own: [`crate::http`] hands it the
//! JSON body of a request or response whose `Content-Type` is `application/fhir+json` or
//! `application/json` (de-chunked, at most [`MAX_BODY_BYTES`]). The body must be a JSON object
//! with a top-level `resourceType`; that member is found first, by walking the object's members
//! and stepping over every other value without decoding it (strings are skipped, not copied).
//! Only then, and only for `Device` and `DeviceDefinition`, are the allow-listed members read:
//! `manufacturer` (or R4 DeviceDefinition's `manufacturerString`), `modelNumber`,
//! `serialNumber`, `version` (strings or `{ "value": … }` objects), and of each
//! `udiCarrier`/`udiDeviceIdentifier` its `deviceIdentifier` and `carrierHRF`. A `Bundle` is
//! walked the same way: each `entry[].resource` is checked for its `resourceType` before any
//! other member of it is looked at. Every other resource — `Patient`, `Observation`,
//! `Encounter`… — is stepped over unread; its type name is the one thing kept
//! ([`Field::FhirResourceType`]), which is what marks the service as FHIR.
//!
//! Who is described: a device (or the gateway acting for it) sends its own `Device` resource to
//! a FHIR server, so the identity facts are taken from request bodies only and describe the
//! client. A server's response holding `Device` resources lists an inventory that describes
//! neither endpoint: only its resource types are kept.
//!
//! The scanner is a bounded, non-recursive JSON walker: nesting ([`MAX_DEPTH`]), members per
//! object and array items walked ([`MAX_ITEMS`]), values copied ([`MAX_FACTS`]) and string
//! length ([`MAX_VALUE_BYTES`]) are all capped; malformed JSON stops it with what it found.
//! Linear in the body.

use crate::evidence::{clean_text, Fact, Field, Protocol};
use crate::http::HttpDecoder;
use crate::registry::{AppDecoder, Decode, Probe};

/// FHIR's registry entry. It never claims a stream: HTTP's probe does, and the HTTP decoder
/// reads FHIR bodies. The entry says that FHIR is a TCP application, so a service whose facts
/// are FHIR is labelled so (and judged as a patient-data protocol).
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Fhir,
    probe: |_| Probe::NotMine,
    resync: None,
    decode: Decode::Stream(|| Box::new(HttpDecoder::default())),
};

/// Body bytes collected per message by the HTTP decoder; a larger body is skipped unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Deepest nesting stepped over.
const MAX_DEPTH: usize = 32;
/// Members of one object, or items of one array, walked.
const MAX_ITEMS: usize = 4096;
/// Facts taken from one body.
const MAX_FACTS: usize = 64;
/// Longest string value copied (a model number or a UDI HRF is far shorter).
const MAX_VALUE_BYTES: usize = 512;
/// `Bundle.entry` items examined.
const MAX_ENTRIES: usize = 256;

/// `application/fhir+json` (FHIR R4 §3.1.0.1.7) or plain `application/json`, parameters aside.
pub fn is_json_media_type(value: &[u8]) -> bool {
    let media = value
        .split(|&b| b == b';')
        .next()
        .unwrap_or(&[])
        .trim_ascii();
    media.eq_ignore_ascii_case(b"application/fhir+json")
        || media.eq_ignore_ascii_case(b"application/json")
}

/// The resource type names ward reports (FHIR R4 and R5 resources, the Resource Index of each
/// release). `resourceType` is a string its sender chose: a name not in this list (a misuse,
/// or anything else written there) is never copied out.
const RESOURCE_TYPES: &[&[u8]] = &[
    b"Account",
    b"ActivityDefinition",
    b"AdverseEvent",
    b"AllergyIntolerance",
    b"Appointment",
    b"AppointmentResponse",
    b"AuditEvent",
    b"Basic",
    b"Binary",
    b"BiologicallyDerivedProduct",
    b"BodyStructure",
    b"Bundle",
    b"CapabilityStatement",
    b"CarePlan",
    b"CareTeam",
    b"CatalogEntry",
    b"ChargeItem",
    b"ChargeItemDefinition",
    b"Claim",
    b"ClaimResponse",
    b"ClinicalImpression",
    b"CodeSystem",
    b"Communication",
    b"CommunicationRequest",
    b"CompartmentDefinition",
    b"Composition",
    b"ConceptMap",
    b"Condition",
    b"Consent",
    b"Contract",
    b"Coverage",
    b"CoverageEligibilityRequest",
    b"CoverageEligibilityResponse",
    b"DetectedIssue",
    b"Device",
    b"DeviceAssociation",
    b"DeviceDefinition",
    b"DeviceDispense",
    b"DeviceMetric",
    b"DeviceRequest",
    b"DeviceUsage",
    b"DeviceUseStatement",
    b"DiagnosticReport",
    b"DocumentManifest",
    b"DocumentReference",
    b"Encounter",
    b"Endpoint",
    b"EnrollmentRequest",
    b"EnrollmentResponse",
    b"EpisodeOfCare",
    b"EventDefinition",
    b"Evidence",
    b"EvidenceVariable",
    b"ExplanationOfBenefit",
    b"FamilyMemberHistory",
    b"Flag",
    b"Goal",
    b"Group",
    b"GuidanceResponse",
    b"HealthcareService",
    b"ImagingSelection",
    b"ImagingStudy",
    b"Immunization",
    b"ImmunizationEvaluation",
    b"ImmunizationRecommendation",
    b"ImplementationGuide",
    b"InsurancePlan",
    b"Invoice",
    b"Library",
    b"Linkage",
    b"List",
    b"Location",
    b"Measure",
    b"MeasureReport",
    b"Media",
    b"Medication",
    b"MedicationAdministration",
    b"MedicationDispense",
    b"MedicationKnowledge",
    b"MedicationRequest",
    b"MedicationStatement",
    b"MessageDefinition",
    b"MessageHeader",
    b"MolecularSequence",
    b"NamingSystem",
    b"NutritionIntake",
    b"NutritionOrder",
    b"Observation",
    b"ObservationDefinition",
    b"OperationDefinition",
    b"OperationOutcome",
    b"Organization",
    b"OrganizationAffiliation",
    b"Parameters",
    b"Patient",
    b"PaymentNotice",
    b"PaymentReconciliation",
    b"Person",
    b"PlanDefinition",
    b"Practitioner",
    b"PractitionerRole",
    b"Procedure",
    b"Provenance",
    b"Questionnaire",
    b"QuestionnaireResponse",
    b"RelatedPerson",
    b"RequestGroup",
    b"RequestOrchestration",
    b"ResearchStudy",
    b"ResearchSubject",
    b"RiskAssessment",
    b"Schedule",
    b"SearchParameter",
    b"ServiceRequest",
    b"Slot",
    b"Specimen",
    b"SpecimenDefinition",
    b"StructureDefinition",
    b"StructureMap",
    b"Subscription",
    b"Substance",
    b"SupplyDelivery",
    b"SupplyRequest",
    b"Task",
    b"TerminologyCapabilities",
    b"TestReport",
    b"TestScript",
    b"Transport",
    b"ValueSet",
    b"VerificationResult",
    b"VisionPrescription",
];

/// The facts of one JSON body: the resource types it holds and, when `identity` (a request
/// body: the sender describing itself), the allow-listed members of its `Device` and
/// `DeviceDefinition` resources. Nothing for a body that is not a FHIR resource.
pub fn body_facts(body: &[u8], identity: bool, out: &mut Vec<Fact>) {
    let mut j = Json { b: body, pos: 0 };
    j.ws();
    if j.peek() != Some(b'{') {
        return;
    }
    let mut found = Vec::new();
    resource(&mut j, identity, true, &mut found);
    for f in found {
        if !out.contains(&f) {
            out.push(f);
        }
    }
}

/// One resource object at `j` (positioned on its `{`): its type first, then what it allows.
fn resource(j: &mut Json<'_>, identity: bool, top: bool, out: &mut Vec<Fact>) {
    let start = j.pos;
    let Some(kind) = j.member_string(b"resourceType") else {
        return;
    };
    if RESOURCE_TYPES.contains(&kind) {
        push(out, Field::FhirResourceType, kind);
    }
    j.pos = start;
    match kind {
        b"Device" | b"DeviceDefinition" if identity => device(j, out),
        // Only a top-level Bundle is opened: a Bundle's entries are resources, not Bundles.
        b"Bundle" if top => bundle(j, identity, out),
        _ => {}
    }
}

fn push(out: &mut Vec<Fact>, field: Field, value: &[u8]) {
    if out.len() >= MAX_FACTS || value.is_empty() || value.len() > MAX_VALUE_BYTES {
        return;
    }
    let f = Fact::new(field, clean_text(value));
    if !f.value.is_empty() && !out.contains(&f) {
        out.push(f);
    }
}

/// The allow-listed members of a `Device`/`DeviceDefinition` object.
fn device(j: &mut Json<'_>, out: &mut Vec<Fact>) {
    j.members(|j, key| {
        match key {
            b"manufacturer" | b"manufacturerString" => {
                if let Some(s) = j.string() {
                    push(out, Field::FhirDeviceManufacturer, s);
                    return true;
                }
            }
            b"modelNumber" => {
                if let Some(s) = j.string() {
                    push(out, Field::FhirDeviceModelNumber, s);
                    return true;
                }
            }
            b"serialNumber" => {
                if let Some(s) = j.string() {
                    push(out, Field::FhirDeviceSerialNumber, s);
                    return true;
                }
            }
            // R4 Device.version[]: { "value": … }; R4 DeviceDefinition.version[]: strings.
            b"version" => {
                return j.items(|j| {
                    if let Some(s) = j.string() {
                        push(out, Field::FhirDeviceVersion, s);
                        return true;
                    }
                    j.members(|j, k| {
                        if k == b"value" {
                            if let Some(s) = j.string() {
                                push(out, Field::FhirDeviceVersion, s);
                                return true;
                            }
                        }
                        j.skip()
                    })
                });
            }
            b"udiCarrier" | b"udiDeviceIdentifier" => {
                return j.items(|j| {
                    j.members(|j, k| {
                        let field = match k {
                            b"deviceIdentifier" => Field::FhirUdiDeviceIdentifier,
                            b"carrierHRF" => Field::FhirUdiCarrierHrf,
                            _ => return j.skip(),
                        };
                        match j.string() {
                            Some(s) => {
                                push(out, field, s);
                                true
                            }
                            None => j.skip(),
                        }
                    })
                });
            }
            _ => {}
        }
        j.skip()
    });
}

/// A Bundle's `entry[].resource` objects, each checked for its type first.
fn bundle(j: &mut Json<'_>, identity: bool, out: &mut Vec<Fact>) {
    j.members(|j, key| {
        if key != b"entry" {
            return j.skip();
        }
        let mut n = 0;
        j.items(|j| {
            n += 1;
            if n > MAX_ENTRIES {
                return j.skip();
            }
            j.members(|j, k| {
                if k == b"resource" && j.peek() == Some(b'{') {
                    let start = j.pos;
                    resource(j, identity, false, out);
                    j.pos = start;
                }
                j.skip()
            })
        })
    });
}

/// A cursor over JSON text. Every method stops (returns `false`/`None`) at malformed input
/// instead of guessing; positions only move forward except where a caller rewinds to an
/// object's start it saved, which happens at most twice per resource.
struct Json<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Json<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The raw bytes of a string at the cursor (escapes left as they are: values ward keeps
    /// are identifiers, and clean_text neutralises what an escape could hide), moving past it.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.ws();
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.pos + 1;
        let mut i = start;
        loop {
            match self.b.get(i)? {
                b'"' => break,
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        self.pos = i + 1;
        self.b.get(start..i)
    }

    /// Steps over one value of any kind without decoding it.
    fn skip(&mut self) -> bool {
        self.ws();
        match self.peek() {
            Some(b'"') => self.string().is_some(),
            Some(b'{' | b'[') => {
                // Brackets are counted, strings stepped over: no recursion, bounded depth.
                let mut depth = 0usize;
                loop {
                    self.ws();
                    match self.peek() {
                        Some(b'{' | b'[') => {
                            depth += 1;
                            if depth > MAX_DEPTH {
                                return false;
                            }
                            self.pos += 1;
                        }
                        Some(b'}' | b']') => {
                            depth = depth.saturating_sub(1);
                            self.pos += 1;
                            if depth == 0 {
                                return true;
                            }
                        }
                        Some(b'"') => {
                            if self.string().is_none() {
                                return false;
                            }
                        }
                        Some(_) => self.pos += 1,
                        None => return false,
                    }
                }
            }
            Some(_) => {
                // A number, true, false or null: up to the next delimiter.
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.pos += 1;
                }
                true
            }
            None => false,
        }
    }

    /// Walks the members of the object at the cursor, calling `f` with the cursor on each
    /// value; `f` must consume the value and say whether it could. Moves past the object.
    fn members(&mut self, mut f: impl FnMut(&mut Self, &[u8]) -> bool) -> bool {
        if !self.eat(b'{') {
            return false;
        }
        if self.eat(b'}') {
            return true;
        }
        for _ in 0..MAX_ITEMS {
            let Some(key) = self.string() else {
                return false;
            };
            if !self.eat(b':') {
                return false;
            }
            if !f(self, key) {
                return false;
            }
            if self.eat(b',') {
                continue;
            }
            return self.eat(b'}');
        }
        false
    }

    /// Walks the items of the array at the cursor (or the one value there, as FHIR's
    /// cardinality allows a single object where the spec says array): `f` consumes each.
    fn items(&mut self, mut f: impl FnMut(&mut Self) -> bool) -> bool {
        if !self.eat(b'[') {
            return f(self);
        }
        if self.eat(b']') {
            return true;
        }
        for _ in 0..MAX_ITEMS {
            self.ws();
            if !f(self) {
                return false;
            }
            if self.eat(b',') {
                continue;
            }
            return self.eat(b']');
        }
        false
    }

    /// The string value of member `name` of the object at the cursor, the others stepped
    /// over; the cursor ends past the object (or where the JSON broke).
    fn member_string(&mut self, name: &[u8]) -> Option<&'a [u8]> {
        let mut found = None;
        self.members(|j, key| {
            if found.is_none() && key == name {
                found = j.string();
                return found.is_some();
            }
            j.skip()
        });
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(body: &str, identity: bool) -> Vec<(Field, String)> {
        let mut out = Vec::new();
        body_facts(body.as_bytes(), identity, &mut out);
        out.into_iter().map(|f| (f.field, f.value)).collect()
    }

    /// The HL7 FHIR R4 Device example shape (hl7.org/fhir/R4/device-example-f001-feedingtube
    /// and device-example-udi1), with a member order that puts resourceType last.
    const DEVICE: &str = r#"{
      "id": "example",
      "udiCarrier": [{"deviceIdentifier": "09504000059118",
                      "carrierHRF": "(01)09504000059118(17)141120(10)7654321D(21)10987654d321"}],
      "manufacturer": "Acme Devices, Inc",
      "modelNumber": "AB 45-J",
      "serialNumber": "AIDC-1234",
      "version": [{"type": {"text": "firmware"}, "value": "10.23-23423"}],
      "patient": {"reference": "Patient/CANARYFHIR"},
      "note": [{"text": "CANARYFHIRNOTE"}],
      "resourceType": "Device"
    }"#;

    #[test]
    fn device_names_its_maker_model_serial_version_and_udi() {
        let got = facts(DEVICE, true);
        for (field, value) in [
            (Field::FhirResourceType, "Device"),
            (Field::FhirDeviceManufacturer, "Acme Devices, Inc"),
            (Field::FhirDeviceModelNumber, "AB 45-J"),
            (Field::FhirDeviceSerialNumber, "AIDC-1234"),
            (Field::FhirDeviceVersion, "10.23-23423"),
            (Field::FhirUdiDeviceIdentifier, "09504000059118"),
            (
                Field::FhirUdiCarrierHrf,
                "(01)09504000059118(17)141120(10)7654321D(21)10987654d321",
            ),
        ] {
            assert!(
                got.contains(&(field, value.to_owned())),
                "{field:?} in {got:?}"
            );
        }
        assert!(got.iter().all(|(_, v)| !v.contains("CANARY")), "{got:?}");
        assert_eq!(got.len(), 7, "{got:?}");
    }

    #[test]
    fn a_response_keeps_only_resource_types() {
        assert_eq!(
            facts(DEVICE, false),
            [(Field::FhirResourceType, "Device".to_owned())]
        );
    }

    #[test]
    fn other_resources_are_stepped_over_unread() {
        let patient = r#"{"resourceType":"Patient","name":[{"family":"CANARYFHIR",
            "given":["Ann"]}],"manufacturer":"not a device","serialNumber":"X"}"#;
        assert_eq!(
            facts(patient, true),
            [(Field::FhirResourceType, "Patient".to_owned())]
        );
    }

    /// `resourceType` is copied only when it names a FHIR resource: a patient name written
    /// there stays on the wire.
    #[test]
    fn only_known_resource_type_names_are_copied() {
        let odd = r#"{"resourceType":"CANARYFHIR^PATIENT","manufacturer":"x"}"#;
        assert!(facts(odd, true).is_empty());
        assert!(RESOURCE_TYPES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn bundles_are_opened_one_level_and_entries_checked_first() {
        let bundle = r#"{"resourceType":"Bundle","type":"transaction","entry":[
            {"resource":{"resourceType":"Observation","valueQuantity":{"value":98},
                         "subject":{"reference":"Patient/CANARY"}}},
            {"fullUrl":"urn:uuid:1","resource":{"modelNumber":"WP-500",
                         "resourceType":"DeviceDefinition","manufacturerString":"WardPump",
                         "version":["4.2.0"]}}]}"#;
        let got = facts(bundle, true);
        for (field, value) in [
            (Field::FhirResourceType, "Bundle"),
            (Field::FhirResourceType, "Observation"),
            (Field::FhirResourceType, "DeviceDefinition"),
            (Field::FhirDeviceManufacturer, "WardPump"),
            (Field::FhirDeviceModelNumber, "WP-500"),
            (Field::FhirDeviceVersion, "4.2.0"),
        ] {
            assert!(
                got.contains(&(field, value.to_owned())),
                "{field:?} in {got:?}"
            );
        }
        assert!(got.iter().all(|(_, v)| !v.contains("CANARY")), "{got:?}");
    }

    #[test]
    fn not_fhir_and_broken_json_give_nothing_or_what_came_first() {
        assert!(facts(r#"{"name":"x"}"#, true).is_empty());
        assert!(facts("[1,2]", true).is_empty());
        assert!(facts("", true).is_empty());
        // Cut anywhere: never a panic, never a value from past the cut.
        for n in 0..DEVICE.len() {
            if let Some(cut) = DEVICE.get(..n) {
                let _ = facts(cut, true);
            }
        }
        // Deep nesting is refused, not recursed into.
        let deep = format!(
            r#"{{"a":{}1{},"resourceType":"Device"}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(facts(&deep, true).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let mut out = Vec::new();
            body_facts(&bytes, true, &mut out);
            proptest::prop_assert!(out.len() <= MAX_FACTS);
        }
    }
}
