#!/usr/bin/env python3
"""Build tests/fixtures/manifest.json from the fixture captures.

Usage: build_manifest.py FIXTURE_DIR

The facts are *read back from the captures* with tshark (DICOM association
items, DIMSE command fields and data-set attributes come from tshark's DICOM
dissector; HL7 fields are parsed from the MLLP frames of the TCP streams that
tshark reassembles; DHCP options come from the UDP payloads tshark extracts;
HTTP headers and SSH banners from tshark's HTTP and SSH dissectors; ASTM
Header records from the TCP streams tshark reassembles, decoded with the `astm`
package's codec since tshark has no ASTM dissector),
so the manifest only ever lists what is really on the wire.  For the
generated fixtures the script additionally asserts that everything the
scenarios injected (EXPECT below) was found, and that the listed canaries are
present and cover every "CANARY..." token on the wire; it exits non-zero if
not, which makes generate.sh fail.

Only stable facts are listed: no timestamps, no TCP ports, no addresses
that change between runs.
"""
import json
import os
import re
import struct
import subprocess
import sys
import tomllib

# --------------------------------------------------------------------------
# Fixture table.  ports: decode-as for tshark; expect: facts the generator
# injected (must be found); canaries: patient-data strings on the wire.
# --------------------------------------------------------------------------
CT_FACTS = [
    ("dicom.modality", "CT"), ("dicom.manufacturer", "WARD TEST MEDICAL"),
    ("dicom.station_name", "CT-STATION-1"), ("dicom.model_name", "WardScan 64"),
    ("dicom.device_serial_number", "SN-0042"),
    ("dicom.software_versions", "VA40B"), ("dicom.software_versions", "SP2"),
    ("dicom.abstract_syntax", "1.2.840.10008.5.1.4.1.1.2"),
    ("dicom.command", "C-STORE-RQ"),
]
DCMTK_FACTS = [
    ("dicom.calling_ae", "WARD_CT01"), ("dicom.called_ae", "WARD_PACS"),
    ("dicom.called_ae", "WARD_WLM"), ("dicom.command", "C-ECHO-RQ"),
    ("dicom.command", "C-FIND-RQ"), ("dicom.abstract_syntax", "1.2.840.10008.1.1"),
    ("dicom.abstract_syntax", "1.2.840.10008.5.1.4.31"),
] + CT_FACTS
CT_CANARIES = ["CANARY^DICOMPATIENT", "CANARY-MRN-0001", "CANARY-ACC-0001",
               "CANARYREFERRING^PHYSICIAN", "19230405"]
DCMTK_CANARIES = CT_CANARIES + ["CANARY^WORKLISTPATIENT", "CANARY-MRN-0002",
                                "CANARY-ACC-0002", "19230506"]

PCD01_FACTS = [
    ("hl7.sending_application", "MINDRAY_D-SERIES^00A037009A0053DE^EUI-64"),
    ("hl7.sending_facility", "WARD_ICU"),
    ("hl7.receiving_application", "WARD_DOC^0012211839000100^EUI-64"),
    ("hl7.receiving_facility", "WARD_HOSPITAL"),
    ("hl7.message_type", "ORU^R01^ORU_R01"), ("hl7.processing_id", "P"),
    ("hl7.version", "2.6"),
    ("hl7.profile", "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"),
    ("hl7.equipment_instance", "0012211839000001^EUI-64"),
    ("hl7.device_code", "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC"),
]
PCD01_CANARIES = ["CANARYFAMILY^CANARYGIVEN", "CANARY-MRN-HL7-0001", "19230708",
                  "CANARYATTENDING^DOCTOR", "CANARYORDERING^PROVIDER",
                  "CANARYOBXVALUE", "CANARYNTECOMMENT"]
ADT_FACTS = [
    ("hl7.sending_application", "WARD_ADT"), ("hl7.sending_facility", "WARD_HOSPITAL"),
    ("hl7.receiving_application", "WARD_LIS"), ("hl7.receiving_facility", "WARD_LAB"),
    ("hl7.message_type", "ADT^A01^ADT_A01"), ("hl7.version", "2.5"),
]
ADT_CANARIES = ["CANARYADT^PATIENT", "CANARY-MRN-ADT-0001", "19230809",
                "CANARYADTATTENDING^DOCTOR", "CANARYKIN^RELATIVE",
                "CANARYINSURED^PERSON", "CANARYGUARANTOR^PERSON",
                "1 CANARY STREET", "CANARYTOWN"]
V29_FACTS = [
    ("hl7.sending_application", "WARD_PUMP_GW^0012211839000002^EUI-64"),
    ("hl7.version", "2.9"),
    ("hl7.participation_device", "WP500-0099-7731^WARD_INFUSION^0012211839000003^EUI-64"),
    ("hl7.udi", "(01)00643169001763(17)160712(21)21A11F4855"),
    ("hl7.device_manufacturer", "WARD INFUSION SYSTEMS"),
    ("hl7.device_model", "WardPump 500"), ("hl7.device_serial", "WP-0099-7731"),
    ("hl7.device_software_version", "4.2.1"),
]
V29_CANARIES = ["CANARYV29^PATIENT", "CANARY-MRN-V29-0001", "19230910"]

DHCP_FACTS = [
    ("dhcp.message_type", "DISCOVER"), ("dhcp.message_type", "OFFER"),
    ("dhcp.message_type", "REQUEST"), ("dhcp.message_type", "ACK"),
    ("dhcp.client_mac", "00:12:21:aa:bb:01"), ("dhcp.hostname", "infusion-pump-07"),
    ("dhcp.vendor_class", "BBraun-SpaceStation"),
    ("dhcp.parameter_request_list", "1,3,6,42,12,43,15,28"),
    ("dhcp.client_id", "01001221aabb01"), ("dhcp.fqdn", "infusion-pump-07.ward.test"),
    ("dhcp.user_class", "WardTestMed-Infusion"), ("dhcp.vendor_option_codes", "1,2"),
    ("dhcp.vendor_option", "1=WardPump-500"),
]

# http_peers.py's fictional vendor; curl's own User-Agent is read back too but not injected.
HTTP_FACTS = [
    ("http.user_agent", "WardTestMed-VitalsMonitor/2.4.1 (VM-240; fw 2.4.1-b17)"),
    ("http.host", "192.0.2.20:8080"),
    ("http.server", "WardTestMed-VitalsHub/3.2.1 (WTM-VH300)"),
    ("http.x_powered_by", "WardTestMed Embedded Web 1.4"),
    ("http.auth_realm", "WardTestMed VH-300 Vitals Gateway"),
]
HTTP_CANARIES = ["CANARY^HTTPPATIENT", "CANARY-MRN-HTTP-0001", "19230102"]
# openssl s_server/s_client (generate.sh scenario_tls): TLS 1.2 and 1.3 to the fictional
# WardVent 900 on 2762 (CA-issued certificate), TLS 1.2 to a WardPump 500 on 8443 (self-signed).
TLS_FACTS = [
    ("tls.server_name", "wardvent-900-0815.ward.test"), ("tls.server_name", "wardpump-500-7731"),
    ("tls.alpn", "h2"), ("tls.alpn", "http/1.1"),
    ("tls.client_versions", "TLS 1.2"), ("tls.client_versions", "TLS 1.3"),
    ("tls.server_version", "TLS 1.2"), ("tls.server_version", "TLS 1.3"),
    ("tls.cert_subject_cn", "wardvent-900-0815.ward.test"),
    ("tls.cert_subject_o", "Ward Test Medical"), ("tls.cert_subject_ou", "WardVent 900"),
    ("tls.cert_issuer", "C=DE, O=Ward Test Medical, CN=Ward Test Medical Device CA"),
    ("tls.cert_not_before", "2026-01-01T00:00:00Z"), ("tls.cert_not_after", "2036-01-01T00:00:00Z"),
    ("tls.cert_serial", "5741524400000815"), ("tls.cert_self_signed", "false"),
    ("tls.cert_subject_cn", "wardpump-500-7731"), ("tls.cert_subject_o", "Ward Infusion Systems"),
    ("tls.cert_subject_ou", "WardPump 500"), ("tls.cert_serial", "7731"),
    ("tls.cert_self_signed", "true"),
]
TLS_CANARIES = ["CANARYTLS^PATIENT", "CANARY-MRN-TLS-0001", "CANARYTLS^QUOKKACOOKIE"]

MDNS_FACTS = [
    ("mdns.instance", "WardTestMed VM-240 (monitor)"), ("mdns.service_type", "_http._tcp"),
    ("mdns.host_name", "wardtestmed-vm240.local"), ("mdns.model", "VM-240"),
    ("mdns.manufacturer", "WardTestMed"), ("mdns.software_version", "2.4.1"),
]
# Under the TXT key `patient`, which ward must never read.
MDNS_CANARIES = ["CANARY^MDNSPATIENT"]

SSDP_FACTS = [
    ("ssdp.server", "WardTestOS/1.0 UPnP/1.0 WardTestMed-VH300/3.2"),
    ("ssdp.usn", "uuid:5741524e-4454-4553-5456-483330300001::urn:schemas-upnp-org:device:Basic:1"),
    ("ssdp.type", "urn:schemas-upnp-org:device:Basic:1"),
    # LOCATION http://192.0.2.10:49152/description.xml, cut to its origin.
    ("ssdp.location", "http://192.0.2.10:49152"),
]
# Under the header X-WARDTEST-NOTE, which ward must never read.
SSDP_CANARIES = ["CANARY^SSDPPATIENT"]

# generate.sh scenario_upnp: minidlna (a real UPnP MediaServer) advertises itself and serves its
# device description to async-upnp-client; curl adds a request carrying the canaries.
UPNP_FACTS = [
    ("ssdp.server", "Debian DLNADOC/1.50 UPnP/1.0 MiniDLNA/1.3.0"),
    ("ssdp.type", "urn:schemas-upnp-org:device:MediaServer:1"),
    ("ssdp.usn", "uuid:5741524e-4454-4553-544d-533530300001::urn:schemas-upnp-org:device:MediaServer:1"),
    ("ssdp.location", "http://192.0.2.10:8200"),
    ("ssdp.device_type", "urn:schemas-upnp-org:device:MediaServer:1"),
    ("ssdp.friendly_name", "WardTestMed Media Station"),
    ("ssdp.manufacturer", "Justin Maggard"),
    ("ssdp.model_description", "MiniDLNA on Linux"),
    ("ssdp.model_name", "WardTestMed MS-500"),
    ("ssdp.model_number", "MS-500"),
    ("ssdp.serial_number", "WTMMS500-0042"),
    ("ssdp.udn", "uuid:5741524e-4454-4553-544d-533530300001"),
    ("http.server", "Debian DLNADOC/1.50 UPnP/1.0 MiniDLNA/1.3.0"),
    ("http.host", "192.0.2.10:8200"),
]
# In a SOAP Browse request's ObjectID and in curl's path, query, cookie and body.
UPNP_CANARIES = ["CANARY^UPNPPATIENT", "CANARY-MRN-UPNP-0001"]

SNMP_FACTS = [
    ("snmp.sys_descr", "WardTestNet WX-200 Print Server, firmware 4.1.7"),
    ("snmp.sys_object_id", "1.3.6.1.4.1.32473.7.200"),
    ("snmp.sys_name", "wardtestnet-wx200.example"),
]
# The community string, in every message: ward must never store it.
SNMP_CANARIES = ["CANARY^SNMPCOMMUNITY"]
# llmnr_peers.py (generate.sh scenario_llmnr): a pump answers A and AAAA queries for its own
# name; the workstation's question name is a hint about whom it talks to, not its own name.
LLMNR_FACTS = [("llmnr.name", "WARDLLMNR-PUMP7"), ("llmnr.queried_name", "WARDLLMNR-PUMP7")]

# intellivue_peers.py: a real IntelliVue MP70's Connect Indication (somno/einstein's public
# sample) and a real MDS Create Event Report spoken by that MP70 (model and system id swapped in),
# then a real demographics poll result's layout carrying canaries; the client side sends
# VSCaptureMP's public byte arrays (protocols/testdata/intellivue/README.md).
INTELLIVUE_FACTS = [
    ("intellivue.manufacturer", "Philips"), ("intellivue.model", "M8007A"),
    ("intellivue.serial", "DE22713007"), ("intellivue.part_number", "M8007A"),
    ("intellivue.sw_revision", "G.01.78"), ("intellivue.hw_revision", "B.00.05"),
    ("intellivue.system_id", "00:09:fb:09:77:bd"),
    ("intellivue.protocol", "acse/udp/24105"), ("intellivue.protocol", "data_out/udp/24105"),
]
INTELLIVUE_CANARIES = ["CANARYIV^PATIENT", "CANARY-MRN-IV-0001", "CANARYIV^BEDLABEL"]

# poct1a_peers.py: Nova Biomedical's StatStrip hello (DML interface specification §6.2.4), a
# status, and an observation carrying canary patient and operator values.
POCT1A_FACTS = [
    ("poct1a.message_type", "HEL.R01"), ("poct1a.vendor_id", "NOVABIO"),
    ("poct1a.model_id", "StatStrip"), ("poct1a.serial_id", "0600100736"),
    ("poct1a.manufacturer_name", "Nova Biomedical"), ("poct1a.hw_version", "K1"),
    ("poct1a.sw_version", "3.10.8.0"), ("poct1a.condition", "R"),
    ("poct1a.message_type", "OBS.R01"), ("poct1a.message_type", "ACK.R01"),
]
POCT1A_CANARIES = ["CANARY-MRN-POCT-0001", "CANARYPOCT^PATIENT", "CANARYPOCT^WARDLOCATION",
                   "CANARYPOCT^OPRQUOKKA"]

# bcc_peers.py: a fictional SpaceCom answering MEM:GET for one Perfusor Space, with canary
# patient and nurse records.
BCC_FACTS = [("bcc.bed_id", "1/1/1"), ("bcc.protocol_version", "3.0"),
             ("bcc.pump_model", "Perfusor Space"), ("bcc.pump_serial", "123456"),
             ("bcc.dianet_type", "8713030")]
BCC_CANARIES = ["CANARY-MRN-BCC-0001", "CANARYBCC^JOHNSMITH", "CANARYBCC^NURSING"]

# nbns_peers.py (a B-node) registers two unique names and a group; nmblookup resolves the host
# and the owner answers.
NBNS_FACTS = [("nbns.name", "WARDNB-PUMP9"), ("nbns.suffix", "00"), ("nbns.suffix", "20"),
              ("nbns.group", "WARDTESTGRP")]

# dnsmasq + ISC dhclient with markup for a host name (generate.sh scenario_dhcp_hostile,
# data/dhclient-hostile.conf): what the console must render inert (issue 21).
DHCP_HOSTILE_FACTS = [
    ("dhcp.client_mac", "02:57:41:52:44:3c"), ("dhcp.hostname", "<script>alert(1)</script>"),
    ("dhcp.vendor_class", "WardTestMed-Hostile")]
# dnsmasq + ISC dhclient -6 (generate.sh scenario_dhcpv6, data/dhclient6.conf).
DHCPV6_FACTS = [("dhcpv6.client_mac", "02:57:41:52:44:16"), ("dhcpv6.vendor_enterprise", "32473"),
                ("dhcpv6.vendor_class", "WardPump-500 fw 3.1"),
                ("dhcpv6.fqdn", "wardpump-500-16.ward.test")]

# dig against dnsmasq (generate.sh scenario_dns): the device resolves its vendor's update host
# (A, AAAA), a TeamViewer router name (an alias of a local relay) and a missing name.
DNS_FACTS = [
    ("dns.queried_name", "update.wardtestmed.example"), ("dns.query_type", "A"),
    ("dns.query_type", "AAAA"), ("dns.queried_name", "router15.teamviewer.com"),
    ("dns.queried_name", "nosuch.wardtestmed.example"),
    ("dns.answered_name", "update.wardtestmed.example"),
    ("dns.answered_name", "router15.teamviewer.com"),
    ("dns.answered_name", "relay.wardtestmed.example"),
]

# lldpd with LLDP-MED class III and CDPv2 (generate.sh scenario_lldp).
LLDP_FACTS = [
    ("lldp.chassis_id", "02:57:41:52:44:1d"), ("lldp.chassis_id_subtype", "mac_address"),
    ("lldp.system_name", "wardtest-phone7.example"),
    ("lldp.system_description", "WardTestTel WT-7 IP Phone, firmware FW-2024.3"),
    ("lldp.enabled_capabilities", "telephone"), ("lldp.management_address", "192.0.2.10"),
    ("lldp.med_device_class", "communication_endpoint"),
    ("lldp.med_hardware_revision", "HW-B2"), ("lldp.med_firmware_revision", "FW-2024.3"),
    ("lldp.med_software_revision", "7.4.1"), ("lldp.med_serial", "WT7-000042"),
    ("lldp.med_manufacturer", "WardTestTel"), ("lldp.med_model", "WT-7"),
    ("lldp.med_asset_id", "ASSET-7781"),
    ("cdp.device_id", "wardtest-phone7.example"), ("cdp.platform", "WardTestTel WT-7"),
    ("cdp.software_version", "WardTestTel WT-7 IP Phone, firmware FW-2024.3"),
    ("cdp.address", "192.0.2.10"),
]

# sdc_peers.py (generate.sh scenario_sdc): sdc11073 provider "WardTestMed WardOx 300" (an SpO2
# monitor, MDS type 69641 = MDC_DEV_ANALY_SAT_O2_MDS) and a consumer, no TLS. Discovery facts
# (WS-Discovery over UDP 3702) from tshark's XML dissector.
SDC_EPR = "urn:uuid:5741524e-5344-4300-8000-574f58333030"
SDC_FACTS = [
    ("sdc.message", "Hello"), ("sdc.message", "Probe"), ("sdc.message", "ProbeMatches"),
    ("sdc.message", "Bye"), ("sdc.epr", SDC_EPR),
    ("sdc.type", "dpws:Device"), ("sdc.type", "mdpws:MedicalDevice"),
    ("sdc.location_facility", "WARDHOSP"), ("sdc.location_building", "NorthWing"),
    ("sdc.location_floor", "3"), ("sdc.location_point_of_care", "ICU"),
    ("sdc.location_room", "ICU-12"), ("sdc.location_bed", "Bed7"),
    ("sdc.device_class", "69641"), ("sdc.metadata_version", "1"),
    ("sdc.xaddr", "http://192.0.2.10:6464"),
]
# The DPWS GetMetadata response (HTTP, cleartext): the HTTP decoder hands SOAP response bodies to
# sdc::metadata_facts (spec key sdc_metadata).
SDC_METADATA_FACTS = [
    ("sdc.manufacturer", "WardTestMed"), ("sdc.model_name", "WardOx 300"),
    ("sdc.model_number", "WOX-300"), ("sdc.model_url", "http://wardtestmed.example/wox300"),
    ("sdc.friendly_name", "WardOx 300 Bed 7"), ("sdc.firmware_version", "3.4.1"),
    ("sdc.serial_number", "WOX300-0042"),
]
# The patient context state set on the provider (GetMdib response over HTTP).
SDC_CANARIES = ["CANARYSDCGIVEN", "CANARYSDCFAMILY", "CANARYSDCBIRTH", "CANARY-MRN-SDC-0001"]
ASTM_FACTS = [("astm.sender", "WardLab Diagnostics^WLA-800^3.2.1^WLA8-000417"),
              ("astm.sender_manufacturer", "WardLab Diagnostics"),
              ("astm.sender_model", "WLA-800"), ("astm.sender_software_version", "3.2.1"),
              ("astm.instrument_id", "WLA8-000417"), ("astm.receiver_id", "WARDLIS"),
              ("astm.processing_id", "P"), ("astm.version", "LIS2-A2"),
              ("astm.record_types", "H,P,O,R,C,L")]
ASTM_CANARIES = ["CANARYASTM^PATIENT", "CANARY-MRN-ASTM-0001", "CANARY-LAB-ASTM-0001",
                 "CANARY-ID3-ASTM-0001", "CANARYASTMMAIDEN", "19231011", "1 CANARYASTM LANE",
                 "CANARYASTMTOWN", "CANARY-PHONE-ASTM-0001", "CANARYASTMDOC^PHYSICIAN",
                 "CANARY-SPECIMEN-ASTM-0001", "CANARYASTMRESULT", "CANARYASTMCOMMENT",
                 "CANARYASTMPASSWORD"]

# fhir_peers.py (generate.sh scenario_fhir): the pump's own Device resource, then a Patient and
# an Observation with the canary patient, a read of the Patient, a Device search (a Bundle).
FHIR_FACTS = [
    ("fhir.resource_type", "Device"), ("fhir.resource_type", "Patient"),
    ("fhir.resource_type", "Observation"), ("fhir.resource_type", "Bundle"),
    ("fhir.device_manufacturer", "WardTestMed"), ("fhir.device_model_number", "WTP-700"),
    ("fhir.device_serial_number", "WTP7-000077"), ("fhir.device_version", "7.4.2"),
    ("fhir.udi_device_identifier", "00857674005079"),
    ("fhir.udi_carrier_hrf", "(01)00857674005079(21)WTP7-000077"),
    ("http.user_agent", "WardTestMed-WTP700/7.4.2"), ("http.server", "WardTestFHIR/1.0"),
]
FHIR_CANARIES = ["CANARYFHIR^PATIENT", "CANARY-MRN-FHIR-0001", "1923-03-04", "12.3456"]

GENERATED = [
    dict(file="dicom-dcmtk.pcap", dicom=[11112, 11113], expect=DCMTK_FACTS,
         canaries=DCMTK_CANARIES),
    dict(file="dicom-dcmtk.pcapng", dicom=[11112, 11113], expect=DCMTK_FACTS,
         canaries=DCMTK_CANARIES),
    dict(file="dicom-pynetdicom.pcap", dicom=[4242], expect=[
        ("dicom.calling_ae", "WARD_MR02"), ("dicom.called_ae", "WARD_PYSCP"),
        ("dicom.command", "C-ECHO-RQ"), ("dicom.command", "C-STORE-RQ"),
        ("dicom.abstract_syntax", "1.2.840.10008.1.1"),
        ("dicom.abstract_syntax", "1.2.840.10008.5.1.4.1.1.4"),
        ("dicom.modality", "MR"), ("dicom.manufacturer", "WARD PY MEDICAL"),
        ("dicom.station_name", "MR-STATION-2"), ("dicom.model_name", "PyMR 3T"),
        ("dicom.device_serial_number", "PY-0007"),
        ("dicom.software_versions", "syngo MR XA20")],
        canaries=["CANARY^PYPATIENT", "CANARY-MRN-PY1", "CANARY-ACC-PY1",
                  "CANARYPY^REFERRER", "19230607"]),
    dict(file="dicom-reject-abort.pcap", dicom=[11112], expect=[
        ("dicom.calling_ae", "WARD_MR02"), ("dicom.called_ae", "WARD_UNKNOWN"),
        ("dicom.called_ae", "WARD_STRICT"), ("dicom.command", "C-ECHO-RQ"),
        ("dicom.reject", "result=permanent,source=service_user,reason=called_ae_not_recognized"),
        ("dicom.abort", "source=service_user,reason=not_specified")], canaries=[],
        no_patient_data="association rejected, then one aborted after C-ECHO: no data set is sent"),
    dict(file="dicom-sll.pcap", dicom=[11112], expect=[
        ("dicom.calling_ae", "WARD_CT01"), ("dicom.called_ae", "WARD_PACS"),
        ("dicom.command", "C-ECHO-RQ")] + CT_FACTS,
        canaries=CT_CANARIES),
    dict(file="qinq.pcap", dicom=[11112], vlans=[200, 100], expect=[
        ("dicom.calling_ae", "WARD_QINQ01"), ("dicom.called_ae", "WARD_PACS"),
        ("dicom.command", "C-ECHO-RQ")], canaries=[],
        no_patient_data="C-ECHO only (the capture exercises 802.1ad/802.1Q tags): no data set"),
    dict(file="hl7-mllp.pcap", hl7=[2575], expect=PCD01_FACTS + ADT_FACTS + V29_FACTS,
         canaries=PCD01_CANARIES + ADT_CANARIES + V29_CANARIES),
    dict(file="hl7-null.pcap", hl7=[2575], expect=PCD01_FACTS + ADT_FACTS + V29_FACTS,
         canaries=PCD01_CANARIES + ADT_CANARIES + V29_CANARIES),
    dict(file="hl7-mllp-vlan.pcap", hl7=[2575], vlans=[100], expect=PCD01_FACTS,
         canaries=PCD01_CANARIES),
    dict(file="hl7-sll2.pcap", hl7=[2575], expect=ADT_FACTS, canaries=ADT_CANARIES),
    dict(file="dhcp.pcap", dhcp=True, expect=DHCP_FACTS, canaries=[],
         no_patient_data="DHCP: no field carries patient data"),
    dict(file="dhcp-hostile.pcap", dhcp=True, expect=DHCP_HOSTILE_FACTS, canaries=[],
         no_patient_data="DHCP: no field carries patient data (a host name that is markup)"),
    dict(file="http.pcap", http=[8080], expect=HTTP_FACTS, canaries=HTTP_CANARIES),
    dict(file="ssh.pcap", ssh=True, expect=[], expect_fields=["ssh.banner", "ssh.software_version"],
         canaries=[], no_patient_data="SSH: identification strings, then an encrypted session"),
    dict(file="mdns.pcap", mdns=True, expect=MDNS_FACTS, canaries=MDNS_CANARIES),
    dict(file="ssdp.pcap", ssdp=True, expect=SSDP_FACTS, canaries=SSDP_CANARIES),
    dict(file="upnp.pcap", http=[8200], ssdp=True, upnp=True, expect=UPNP_FACTS,
         canaries=UPNP_CANARIES),
    dict(file="snmp.pcap", snmp=True, expect=SNMP_FACTS, canaries=SNMP_CANARIES),
    dict(file="llmnr.pcap", llmnr=True, expect=LLMNR_FACTS, canaries=[],
         no_patient_data="LLMNR: host names queried and answered, no other content"),
    dict(file="nbns.pcap", nbns=True, expect=NBNS_FACTS, canaries=[],
         no_patient_data="NetBIOS name service: names and addresses only"),
    dict(file="lldp.pcap", lldp=True, expect=LLDP_FACTS, canaries=[],
         no_patient_data="LLDP/LLDP-MED and CDP: a device's announcement of its own identity to "
                         "its link neighbour"),
    dict(file="intellivue.pcap", intellivue=True, expect=INTELLIVUE_FACTS,
         canaries=INTELLIVUE_CANARIES),
    dict(file="poct1a.pcap", poct1a=True, expect=POCT1A_FACTS, canaries=POCT1A_CANARIES),
    dict(file="bcc.pcap", bcc=True, expect=BCC_FACTS, canaries=BCC_CANARIES),
    dict(file="fhir.pcap", http=[8090], fhir=True, expect=FHIR_FACTS, canaries=FHIR_CANARIES),
    dict(file="dhcpv6.pcap", dhcpv6=True, expect=DHCPV6_FACTS, expect_fields=["dhcpv6.duid"],
         canaries=[], no_patient_data="DHCPv6: identifiers, vendor class and a host name only"),
    dict(file="dns.pcap", dns=True, expect=DNS_FACTS, canaries=[],
         no_patient_data="DNS: names and their types, addresses in answers (never read)"),

    dict(file="sdc.pcap", http=[6464], sdc=True, sdc_metadata=True, expect=SDC_FACTS, canaries=SDC_CANARIES),
    dict(file="astm.pcap", astm=True, expect=ASTM_FACTS, canaries=ASTM_CANARIES),
    dict(file="tls.pcap", tls=True, expect=TLS_FACTS, canaries=TLS_CANARIES,
         sealed="openssl s_client sends the canaries in an HTTP request inside TLS "
                "application data: unreadable on the wire, they must reach no output"),
]

PUBLIC = [
    dict(file="public/HL7-ADT-UDI-OBX.pcap", hl7=[6661], canaries=["MOUSE^MICKEY"]),
    dict(file="public/HL7-ADT-UDI-PRT.pcap", hl7=[6661], canaries=["MOUSE^MICKEY"]),
    dict(file="public/HL7-ADT.pcap", hl7=[6661], canaries=["MOUSE^MICKEY", "MOUSE^MINNIE"]),
    dict(file="public/HL7-ORM.pcap", hl7=[6661], canaries=["MOUSE^MICKEY"]),
    dict(file="public/HL7-ORU.pcap", hl7=[6661], canaries=["MOUSE^MINNIE"]),
    dict(file="public/dicom_arq_1_find_testclient.pcap", dicom=[104], canaries=[],
         no_patient_data="a single A-ASSOCIATE-RQ: no data set"),
    dict(file="public/dicom_arq_2_get_testclient.pcap", dicom=[104], canaries=[],
         no_patient_data="a single A-ASSOCIATE-RQ: no data set"),
    dict(file="public/dicom_arq_3_find_bogus_local.pcap", dicom=[104], canaries=[],
         no_patient_data="a single A-ASSOCIATE-RQ: no data set"),
    dict(file="public/dicom_arq_4_get_bogus_local.pcap", dicom=[104], canaries=[],
         no_patient_data="a single A-ASSOCIATE-RQ: no data set"),
]

LINKTYPES = {0: "NULL", 1: "ETHERNET", 101: "RAW", 113: "LINUX_SLL",
             228: "IPV4", 276: "LINUX_SLL2"}
DHCP_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK",
              6: "NAK", 7: "RELEASE", 8: "INFORM"}


class Failure(Exception):
    pass


# ----------------------------------------------------------- file level ----

# PS3.8 §9.3.4 / §9.3.8 code names, as ward reports them (unknown codes stay numeric).
def reject_text(result, source, reason):
    results = {1: "permanent", 2: "transient"}
    sources = {1: "service_user", 2: "service_provider_acse", 3: "service_provider_presentation"}
    reasons = {(1, 1): "no_reason_given", (2, 1): "no_reason_given",
               (1, 2): "application_context_not_supported", (1, 3): "calling_ae_not_recognized",
               (1, 7): "called_ae_not_recognized", (2, 2): "protocol_version_not_supported",
               (3, 1): "temporary_congestion", (3, 2): "local_limit_exceeded"}
    return "result=%s,source=%s,reason=%s" % (
        results.get(result, result), sources.get(source, source), reasons.get((source, reason), reason))


def abort_text(source, reason):
    sources = {0: "service_user", 2: "service_provider"}
    reasons = {0: "not_specified", 1: "unrecognized_pdu", 2: "unexpected_pdu",
               4: "unrecognized_pdu_parameter", 5: "unexpected_pdu_parameter",
               6: "invalid_pdu_parameter_value"}
    return "source=%s,reason=%s" % (sources.get(source, source), reasons.get(reason, reason))

def file_info(path):
    """(format, linktype name, [frames]) -- frames only for classic pcap."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        e = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        off = struct.unpack(e + "I", data[4:8])[0]
        while off + 12 <= len(data):
            btype, blen = struct.unpack(e + "II", data[off:off + 8])
            if btype == 1:  # Interface Description Block
                lt = struct.unpack(e + "H", data[off + 8:off + 10])[0]
                return "pcapng", LINKTYPES.get(lt, str(lt)), None
            off += blen
        raise Failure("%s: no interface description block" % path)
    e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    lt = struct.unpack(e + "I", data[20:24])[0]
    frames, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
        frames.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return "pcap", LINKTYPES.get(lt & 0xFFFF, str(lt)), frames


def vlan_stacks(frames):
    """Distinct tag stacks (outer first) seen on Ethernet frames."""
    stacks = []
    for fr in frames or []:
        stack, off = [], 12
        while off + 4 <= len(fr):
            tpid = struct.unpack(">H", fr[off:off + 2])[0]
            if tpid not in (0x8100, 0x88A8, 0x9100):
                break
            vid = struct.unpack(">H", fr[off + 2:off + 4])[0] & 0x0FFF
            stack.append((tpid, vid))
            off += 4
        if stack and stack not in stacks:
            stacks.append(stack)
    return stacks


# ------------------------------------------------------------- tshark ----
def tshark(path, *args, decode=()):
    cmd = ["tshark", "-n", "-r", path]
    for port, proto in decode:
        cmd += ["-d", "tcp.port==%d,%s" % (port, proto)]
    cmd += list(args)
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, errors="replace")
    if res.returncode != 0:
        raise Failure("tshark failed: %s" % " ".join(cmd))
    return res.stdout


def tcp_streams(path):
    """[(client_bytes, server_bytes)] for every TCP stream, reassembled by
    tshark's follow (node 0 is the side that sent the first packet)."""
    ids = {int(x) for x in tshark(path, "-T", "fields", "-e", "tcp.stream").split() if x}
    out = []
    for sid in sorted(ids):
        txt = tshark(path, "-q", "-z", "follow,tcp,raw,%d" % sid)
        a, b = bytearray(), bytearray()
        body = txt.split("Node 1:", 1)[1].split("\n", 1)[1]
        for line in body.splitlines():
            if line.startswith("====="):
                break
            if line.startswith("\t"):
                b += bytes.fromhex(line.strip())
            elif line.strip():
                a += bytes.fromhex(line.strip())
        out.append((bytes(a), bytes(b)))
    return out


# --------------------------------------------------------------- FHIR ----


def http_messages(data):
    """[(head, body)] of the HTTP/1.1 messages in one direction's bytes (Content-Length
    framing, as fhir_peers.py sends)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        n = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                n = int(value.strip())
        out.append((head, rest[:n]))
        data = rest[n:]
    return out


def fhir_facts(streams):
    """The oracle for ward's fhir module, with Python's json: every JSON body's resourceType
    (and a Bundle's entries'), and the allow-listed members of the Device resources a client
    sends. Responses describe neither end: their types only."""
    facts = []
    for client, server in streams:
        for data, request in ((client, True), (server, False)):
            for head, body in http_messages(data):
                if b"json" not in head.lower() or not body:
                    continue
                doc = json.loads(body)
                resources = [doc] + [e["resource"] for e in doc.get("entry", [])
                                     if doc.get("resourceType") == "Bundle"]
                for r in resources:
                    kind = r.get("resourceType")
                    facts.append(("fhir.resource_type", kind))
                    if not request or kind not in ("Device", "DeviceDefinition"):
                        continue
                    for key, field in (("manufacturer", "fhir.device_manufacturer"),
                                       ("modelNumber", "fhir.device_model_number"),
                                       ("serialNumber", "fhir.device_serial_number")):
                        if key in r:
                            facts.append((field, r[key]))
                    for v in r.get("version", []):
                        facts.append(("fhir.device_version", v["value"] if isinstance(v, dict) else v))
                    for u in r.get("udiCarrier", []):
                        for key, field in (("deviceIdentifier", "fhir.udi_device_identifier"),
                                           ("carrierHRF", "fhir.udi_carrier_hrf")):
                            if key in u:
                                facts.append((field, u[key]))
    return facts


# -------------------------------------------------------------- DICOM ----
ELEMENT_FACTS = {
    "(0008,0060)": "dicom.modality", "(0008,0070)": "dicom.manufacturer",
    "(0008,1010)": "dicom.station_name", "(0008,1090)": "dicom.model_name",
    "(0018,1000)": "dicom.device_serial_number", "(0018,1020)": "dicom.software_versions",
}
ELEMENT_RE = re.compile(r"^( +)(\([0-9a-f]{4},[0-9a-f]{4}\)) +\d+ (.+?)  +(?:\[[A-Z]{2}\] ?)?(.*)$")


def dicom_facts(path, ports):
    decode = [(p, "dicom") for p in ports]
    facts = []
    rows = tshark(path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
                  "-e", "dicom.pdu.type", "-e", "dicom.assoc.ae.called",
                  "-e", "dicom.assoc.ae.calling", "-e", "dicom.userinfo.uid",
                  "-e", "dicom.userinfo.version", "-e", "dicom.pctx.abss.syntax",
                  "-e", "dicom.assoc.reject.result", "-e", "dicom.assoc.reject.source",
                  "-e", "dicom.assoc.reject.reason", "-e", "dicom.assoc.abort.source",
                  "-e", "dicom.assoc.abort.reason", decode=decode)
    for row in rows.splitlines():
        c = row.split("\t")
        c += [""] * (11 - len(c))
        types = c[0].split(",")
        if "0x01" in types:  # A-ASSOCIATE-RQ carries the identities proposed
            facts.append(("dicom.called_ae", c[1].strip()))
            facts.append(("dicom.calling_ae", c[2].strip()))
            for uid in re.findall(r"\(([0-9]+(?:\.[0-9]+)+)\)", c[5]):
                facts.append(("dicom.abstract_syntax", uid))
        if "0x01" in types or "0x02" in types:
            for v in c[3].split(","):
                facts.append(("dicom.implementation_class_uid", v.strip()))
            for v in c[4].split(","):
                facts.append(("dicom.implementation_version", v.strip()))
        if "0x03" in types:
            facts.append(("dicom.reject", reject_text(*(int(x, 0) for x in (c[6], c[7], c[8])))))
        if "0x07" in types:
            facts.append(("dicom.abort", abort_text(*(int(x, 0) for x in (c[9], c[10])))))
    # DIMSE command fields and top-level data-set attributes from -V.
    for line in tshark(path, "-V", decode=decode).splitlines():
        m = ELEMENT_RE.match(line)
        if not m:
            continue
        indent, tag, _name, value = len(m.group(1)), m.group(2), m.group(3), m.group(4)
        value = value.strip()
        if tag == "(0000,0100)" and value.endswith("-RQ"):
            facts.append(("dicom.command", value))
        elif tag in ELEMENT_FACTS and indent == 8 and value and value != "<Empty>":
            field = ELEMENT_FACTS[tag]
            for part in value.split("\\"):
                if part.strip():
                    facts.append((field, part.strip()))
    return [(f, v) for f, v in facts if v]


# ---------------------------------------------------------------- HL7 ----
MLLP_RE = re.compile(rb"\x0b(.*?)\x1c\x0d", re.S)


def hl7_messages(streams):
    msgs = []
    for a, b in streams:
        for blob in (a, b):
            for m in MLLP_RE.finditer(blob):
                msgs.append(m.group(1).decode("utf-8", "replace"))
    return msgs


def hl7_facts_for(msg):
    segs = [s for s in re.split(r"\r\n|\r|\n", msg) if s]
    if not segs or not segs[0].startswith("MSH"):
        return []
    fs = segs[0][3]
    rep = segs[0][5] if len(segs[0]) > 5 else "~"
    facts = []

    def field(parts, n):
        return parts[n] if len(parts) > n else ""

    def add(name, value, repeat=False):
        for v in (value.split(rep) if repeat else [value]):
            if v:
                facts.append((name, v))

    for seg in segs:
        p = seg.split(fs)
        name = p[0]
        if name == "MSH":
            msh = ["MSH", fs] + p[1:]  # msh[n] == MSH-n
            add("hl7.sending_application", field(msh, 3))
            add("hl7.sending_facility", field(msh, 4))
            add("hl7.receiving_application", field(msh, 5))
            add("hl7.receiving_facility", field(msh, 6))
            add("hl7.message_type", field(msh, 9))
            add("hl7.processing_id", field(msh, 11))
            add("hl7.version", field(msh, 12))
            add("hl7.profile", field(msh, 21), repeat=True)
        elif name == "OBX":
            add("hl7.equipment_instance", field(p, 18), repeat=True)
            if "MDC_DEV_" in field(p, 3):
                add("hl7.device_code", field(p, 3))
        elif name == "PRT":
            # Issue 2's allow-list: PRT-10/16 count only for an equipment participation
            # (PRT-4 EQUIP); the public HL7-ADT-UDI-PRT capture has a placeholder "D" there.
            prt4 = field(p, 4)
            if prt4.split("^")[0].upper() == "EQUIP" or "equipment" in prt4.lower():
                add("hl7.participation_device", field(p, 10), repeat=True)
                add("hl7.udi", field(p, 16), repeat=True)
        elif name == "DEV":
            add("hl7.device_manufacturer", field(p, 5))
            add("hl7.device_model", field(p, 7))
            add("hl7.device_serial", field(p, 11))
            add("hl7.device_software_version", field(p, 16))
    return facts


def hl7_facts(path, ports, streams):
    msgs = hl7_messages(streams)
    if not msgs:
        raise Failure("%s: no MLLP-framed HL7 message found" % path)
    # Cross-check with tshark's HL7 dissector: every MSH-9 we parsed must be
    # shown by it (for MSH its "field N" is MSH-N; other segments are off by one).
    text = tshark(path, "-V", decode=[(p, "hl7") for p in ports])
    for msg in msgs:
        msh9 = msg.split("\r", 1)[0].split(msg[3])[8]
        if ("field 9: %s" % msh9) not in text:
            raise Failure("%s: tshark does not show MSH-9 %r" % (path, msh9))
    facts = []
    for msg in msgs:
        facts += hl7_facts_for(msg)
    return facts


# --------------------------------------------------------------- DHCP ----
def dhcp_facts(path):
    facts = []
    rows = tshark(path, "-Y", "dhcp", "-T", "fields", "-e", "udp.payload")
    for hexpayload in rows.split():
        p = bytes.fromhex(hexpayload.replace(":", ""))
        op, hlen = p[0], p[2]
        yiaddr = ".".join(str(x) for x in p[16:20])
        chaddr = ":".join("%02x" % x for x in p[28:28 + hlen])
        opts, off = {}, 240  # after the magic cookie
        while off < len(p) and p[off] != 255:
            if p[off] == 0:
                off += 1
                continue
            code, ln = p[off], p[off + 1]
            opts[code] = p[off + 2:off + 2 + ln]
            off += 2 + ln
        mtype = DHCP_TYPES.get(opts.get(53, b"\0")[0], "UNKNOWN")
        facts.append(("dhcp.message_type", mtype))
        facts.append(("dhcp.client_mac", chaddr))
        if yiaddr != "0.0.0.0":
            facts.append(("dhcp.your_ip", yiaddr))
        if op == 1:  # client -> server: the device's own fingerprint
            if 12 in opts:
                facts.append(("dhcp.hostname", opts[12].decode("ascii", "replace")))
            if 60 in opts:
                facts.append(("dhcp.vendor_class", opts[60].decode("ascii", "replace")))
            if 55 in opts:
                facts.append(("dhcp.parameter_request_list", ",".join(str(x) for x in opts[55])))
            if 61 in opts:
                facts.append(("dhcp.client_id", opts[61].hex()))
            if 81 in opts and len(opts[81]) > 3:
                facts.append(("dhcp.fqdn", fqdn_name(opts[81])))
            if 77 in opts:
                facts += [("dhcp.user_class", c) for c in user_classes(opts[77])]
            if 43 in opts:
                facts += vendor_suboptions(opts[43])
    # Cross-check the strings with tshark's own DHCP fields.
    ts = tshark(path, "-Y", "dhcp", "-T", "fields", "-e", "dhcp.option.hostname",
                "-e", "dhcp.option.vendor_class_id", "-e", "dhcp.option.user_class.text")
    for f, v in facts:
        if f in ("dhcp.hostname", "dhcp.vendor_class", "dhcp.user_class") and v not in ts:
            raise Failure("%s: tshark disagrees on %s=%s" % (path, f, v))
    return facts


def user_classes(data):
    """Option 77: RFC 3004 length-prefixed instances when the data splits into them exactly,
    else one plain string (Windows, ISC dhclient, iPXE)."""
    out, off = [], 0
    while off < len(data):
        n = data[off]
        if n == 0 or off + 1 + n > len(data):
            return [data.decode("latin-1")]
        out.append(data[off + 1:off + 1 + n].decode("latin-1"))
        off += 1 + n
    return out or [data.decode("latin-1")]


def vendor_suboptions(data):
    """Option 43 as RFC 2132 §8.4 sub-options: their codes, and printable values as code=text."""
    subs, off = [], 0
    while off < len(data):
        code = data[off]
        if code == 0:
            off += 1
            continue
        if code == 255:
            break
        if off + 2 > len(data) or off + 2 + data[off + 1] > len(data):
            return []
        n = data[off + 1]
        subs.append((code, data[off + 2:off + 2 + n]))
        off += 2 + n
    if not subs:
        return []
    facts = [("dhcp.vendor_option_codes", ",".join(str(c) for c, _ in subs))]
    for c, v in subs:
        if v and all(0x20 <= b < 0x7f for b in v):
            facts.append(("dhcp.vendor_option", "%d=%s" % (c, v.decode("ascii"))))
    return facts


# --------------------------------------------------------------- HTTP ----
REALM_RE = re.compile(r'(?:^|[\s,])realm\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', re.I)


def tshark_values(path, fields, decode=(), display_filter=None):
    """{field: [values]} over all packets (those matching `display_filter` when given); several
    occurrences per packet kept apart."""
    out = {f: [] for f in fields}
    args = ["-Y", display_filter] if display_filter else []
    args += ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=\x01"]
    for f in fields:
        args += ["-e", f]
    for row in tshark(path, *args, decode=decode).splitlines():
        for f, col in zip(fields, row.split("\t")):
            out[f] += [v for v in col.split("\x01") if v]
    return out


def http_facts(path, ports):
    """Request User-Agent and Host, response Server, X-Powered-By and the WWW-Authenticate
    realm, as tshark's HTTP dissector shows them (X-Powered-By from its header lines)."""
    decode = [(p, "http") for p in ports]
    # Over TCP only: tshark's HTTP dissector also reads SSDP (HTTP over UDP), which ward reads
    # as SSDP.
    v = tshark_values(path, ["http.user_agent", "http.host", "http.server",
                             "http.www_authenticate", "http.response.line"], decode, "tcp")
    facts = [("http.user_agent", x) for x in v["http.user_agent"]]
    facts += [("http.host", x) for x in v["http.host"]]
    facts += [("http.server", x) for x in v["http.server"]]
    for line in v["http.response.line"]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-powered-by":
            facts.append(("http.x_powered_by", value.strip().replace("\\r\\n", "").strip()))
    for w in v["http.www_authenticate"]:
        m = REALM_RE.search(w)
        if m:
            facts.append(("http.auth_realm", re.sub(r"\\(.)", r"\1", m.group(1) or m.group(2))))
    return facts


# ---------------------------------------------------------------- SSH ----
def ssh_facts(path):
    """Each side's identification string (tshark's ssh.protocol) and its softwareversion."""
    facts = []
    for banner in tshark_values(path, ["ssh.protocol"])["ssh.protocol"]:
        facts.append(("ssh.banner", banner))
        sw = banner.split("-", 2)[2].split(" ", 1)[0] if banner.count("-") >= 2 else ""
        if sw:
            facts.append(("ssh.software_version", sw))
    return facts


def fqdn_name(opt):
    flags, name = opt[0], opt[3:]
    if flags & 0x04:  # E bit: DNS wire format
        labels, i = [], 0
        while i < len(name) and name[i]:
            labels.append(name[i + 1:i + 1 + name[i]].decode("ascii", "replace"))
            i += 1 + name[i]
        return ".".join(labels)
    return name.decode("ascii", "replace").rstrip(".")


# ---------------------------------------------------------------- TLS ----
def is_grease(v):
    return v & 0x0f0f == 0x0a0a and (v >> 8) == (v & 0xff)


TLS_VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
                0x0304: "TLS 1.3"}
JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
                0x0200: "s2", 0x0002: "s2"}


def tls_version_name(v):
    return TLS_VERSIONS.get(v, "0x%04x" % v)


def ja4(version, ciphers, exts, sigalgs, alpn, sni):
    """JA4 (FoxIO technical_details/JA4.md), written from the spec independently of ward's
    Rust implementation, over the lists tshark dissected."""
    import hashlib
    ciphers = [c for c in ciphers if not is_grease(c)]
    exts = [e for e in exts if not is_grease(e)]
    sigalgs = [s for s in sigalgs if not is_grease(s)]

    def h12(s):
        return hashlib.sha256(s.encode()).hexdigest()[:12] if s else "000000000000"
    if alpn:
        a = alpn[0].encode()
        if chr(a[0]).isalnum() and chr(a[-1]).isalnum() and a[0] < 128 and a[-1] < 128:
            al = chr(a[0]) + chr(a[-1])
        else:
            al = a.hex()[0] + a.hex()[-1]
    else:
        al = "00"
    head = "t%s%s%02d%02d%s" % (JA4_VERSIONS.get(version, "00"), "d" if sni else "i",
                                min(len(ciphers), 99), min(len(exts), 99), al)
    b = h12(",".join("%04x" % c for c in sorted(ciphers)))
    c = ",".join("%04x" % e for e in sorted(x for x in exts if x not in (0x0000, 0x0010)))
    if sigalgs:
        c += "_" + ",".join("%04x" % s for s in sigalgs)
    return "%s_%s_%s" % (head, b, h12(c))


def tls_facts(path):
    """SNI, ALPN, offered versions and JA4 of every ClientHello; the version of every
    ServerHello; the leaf certificate of every TLS 1.2 server Certificate message, all from
    tshark's TLS dissector (the certificate's DER bytes as tshark extracts them, decoded with
    the `cryptography` package; its strings cross-checked with tshark's x509sat fields)."""
    from cryptography import x509
    facts = []
    ints = lambda s: [int(x, 0) for x in s.split(",") if x]
    rows = tshark(path, "-Y", "tls.handshake.type == 1", "-T", "fields", "-E", "occurrence=a",
                  "-e", "tls.handshake.version", "-e", "tls.handshake.ciphersuite",
                  "-e", "tls.handshake.extension.type", "-e", "tls.handshake.sig_hash_alg",
                  "-e", "tls.handshake.extensions.supported_version",
                  "-e", "tls.handshake.extensions_alpn_str",
                  "-e", "tls.handshake.extensions_server_name")
    for row in rows.splitlines():
        legacy, ciphers, exts, sigs, versions, alpn, sni = (row.split("\t") + [""] * 7)[:7]
        legacy, versions = int(legacy, 0), ints(versions)
        alpn = [a for a in alpn.split(",") if a]
        if sni:
            facts.append(("tls.server_name", sni))
        facts += [("tls.alpn", a) for a in alpn]
        offered = [v for v in versions if not is_grease(v)] or [legacy]
        facts.append(("tls.client_versions", ",".join(tls_version_name(v) for v in offered)))
        facts.append(("tls.ja4", ja4(max(offered), ints(ciphers), ints(exts), ints(sigs),
                                     alpn, bool(sni))))
    rows = tshark(path, "-Y", "tls.handshake.type == 2", "-T", "fields", "-E", "occurrence=a",
                  "-e", "tls.handshake.version", "-e", "tls.handshake.extensions.supported_version")
    for row in rows.splitlines():
        legacy, selected = (row.split("\t") + [""])[:2]
        facts.append(("tls.server_version", tls_version_name(int(selected or legacy, 0))))
    rows = tshark(path, "-Y", "tls.handshake.type == 11", "-T", "fields", "-E", "occurrence=a",
                  "-e", "tls.handshake.certificate", "-e", "x509sat.uTF8String",
                  "-e", "x509sat.printableString")
    short = {"countryName": "C", "organizationName": "O", "organizationalUnitName": "OU",
             "commonName": "CN", "stateOrProvinceName": "ST", "localityName": "L"}
    for row in rows.splitlines():
        der, strings = row.split("\t")[0].split(",")[0], row  # the leaf comes first
        cert = x509.load_der_x509_certificate(bytes.fromhex(der.replace(":", "")))
        name = lambda n, oid: [a.value for a in n.get_attributes_for_oid(oid)]
        for field, oid in (("tls.cert_subject_cn", x509.NameOID.COMMON_NAME),
                           ("tls.cert_subject_o", x509.NameOID.ORGANIZATION_NAME),
                           ("tls.cert_subject_ou", x509.NameOID.ORGANIZATIONAL_UNIT_NAME)):
            for v in name(cert.subject, oid):
                if v not in strings:
                    raise Failure("%s: tshark disagrees on %s=%s" % (path, field, v))
                facts.append((field, v))
        facts.append(("tls.cert_issuer", ", ".join(
            "%s=%s" % (short[a.oid._name], a.value) for rdn in cert.issuer.rdns for a in rdn)))
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        facts.append(("tls.cert_not_before", cert.not_valid_before_utc.strftime(fmt)))
        facts.append(("tls.cert_not_after", cert.not_valid_after_utc.strftime(fmt)))
        serial = "%x" % cert.serial_number
        facts.append(("tls.cert_serial", serial.zfill(len(serial) + len(serial) % 2)))
        facts.append(("tls.cert_self_signed", "true" if cert.issuer == cert.subject else "false"))
    return facts


# --------------------------------------------------------------- SNMP ----
SNMP_SYSTEM = {"1.3.6.1.2.1.1.1.0": "snmp.sys_descr", "1.3.6.1.2.1.1.2.0": "snmp.sys_object_id",
               "1.3.6.1.2.1.1.5.0": "snmp.sys_name"}


def snmp_facts(path):
    """sysDescr.0, sysObjectID.0 and sysName.0 of GetResponse PDUs (snmp.data == 2), from
    tshark's SNMP dissector: binding names (`snmp.name`), string values (`snmp.value.octets`)
    and OID values (`snmp.value.oid`), matched in order."""
    facts = []
    rows = tshark(path, "-Y", "snmp.data == 2", "-T", "fields", "-E", "occurrence=a",
                  "-E", "aggregator=\x1f", "-e", "snmp.name", "-e", "snmp.value.octets",
                  "-e", "snmp.value.oid")
    for row in rows.splitlines():
        names, octets, oids = [c.split("\x1f") if c else [] for c in (row.split("\t") + ["", ""])[:3]]
        octets, oids = iter(octets), iter(oids)
        for name in names:
            field = SNMP_SYSTEM.get(name)
            if field == "snmp.sys_object_id":
                facts.append((field, next(oids)))
            elif field:
                facts.append((field, bytes.fromhex(next(octets).replace(":", "")).decode()))
    return facts


# --------------------------------------------------------------- LLDP ----
LLDP_CHASSIS_SUBTYPES = ["chassis_component", "interface_alias", "port_component", "mac_address",
                         "network_address", "interface_name", "local"]
LLDP_PORT_SUBTYPES = ["interface_alias", "port_component", "mac_address", "network_address",
                      "interface_name", "agent_circuit_id", "local"]
LLDP_CAPABILITIES = ["other", "repeater", "bridge", "wlan_access_point", "router", "telephone",
                     "docsis_cable_device", "station_only", "c_vlan", "s_vlan",
                     "two_port_mac_relay"]
LLDP_MED_CAPABILITIES = ["capabilities", "network_policy", "location", "power_pse", "power_pd",
                         "inventory"]
LLDP_MED_CLASSES = ["generic_endpoint", "media_endpoint", "communication_endpoint",
                    "network_connectivity"]
LLDP_MED_INVENTORY = [("lldp.media.hardware", "lldp.med_hardware_revision"),
                      ("lldp.media.firmware", "lldp.med_firmware_revision"),
                      ("lldp.media.software", "lldp.med_software_revision"),
                      ("lldp.media.sn", "lldp.med_serial"),
                      ("lldp.media.manufacturer", "lldp.med_manufacturer"),
                      ("lldp.media.model", "lldp.med_model"),
                      ("lldp.media.asset", "lldp.med_asset_id")]
CDP_CAPABILITIES = ["router", "trans_bridge", "source_route_bridge", "switch", "host", "igmp",
                    "repeater", "phone", "remote", "cvta", "mac_relay"]


def bit_names(hexval, names):
    bits = int(hexval, 16)
    return [n for i, n in enumerate(names) if bits & (1 << i)]


def lldp_facts(path):
    """What each LLDPDU says about its sender, from tshark's LLDP dissector, named and
    rendered as ward renders them (subtypes and capability bits by their 802.1AB / TIA-1057
    names)."""
    cols = ["lldp.chassis.subtype", "lldp.chassis.id.mac", "lldp.chassis.id", "lldp.port.subtype",
            "lldp.port.id.mac", "lldp.port.id", "lldp.time_to_live", "lldp.port.desc",
            "lldp.tlv.system.name", "lldp.tlv.system.desc", "lldp.tlv.system_cap",
            "lldp.tlv.enable_system_cap", "lldp.mgn.addr.ip4", "lldp.mgn.addr.ip6",
            "lldp.media.subtype.caps", "lldp.media.subtype.class"] + [c for c, _ in LLDP_MED_INVENTORY]
    args = ["-Y", "lldp", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=\x1f"]
    for c in cols:
        args += ["-e", c]
    facts = []
    for row in tshark(path, *args).splitlines():
        v = dict(zip(cols, [c.split("\x1f") if c else [] for c in (row.split("\t") + [""] * len(cols))[:len(cols)]]))
        for sub_col, mac_col, id_col, names, id_field, sub_field in (
                ("lldp.chassis.subtype", "lldp.chassis.id.mac", "lldp.chassis.id", LLDP_CHASSIS_SUBTYPES,
                 "lldp.chassis_id", "lldp.chassis_id_subtype"),
                ("lldp.port.subtype", "lldp.port.id.mac", "lldp.port.id", LLDP_PORT_SUBTYPES,
                 "lldp.port_id", "lldp.port_id_subtype")):
            for sub in v[sub_col]:
                facts.append((sub_field, names[int(sub) - 1]))
            ids = v[id_col]
            # tshark shows a locally assigned (subtype 7) ID as hex bytes; ward reads the text.
            if v[sub_col] == ["7"]:
                ids = [bytes.fromhex(x.replace(":", "")).decode("latin-1") for x in ids]
            facts += [(id_field, x) for x in v[mac_col] + ids]
        facts += [("lldp.ttl", x) for x in v["lldp.time_to_live"]]
        facts += [("lldp.port_description", x) for x in v["lldp.port.desc"]]
        facts += [("lldp.system_name", x) for x in v["lldp.tlv.system.name"]]
        facts += [("lldp.system_description", x) for x in v["lldp.tlv.system.desc"]]
        for x in v["lldp.tlv.system_cap"]:
            facts += [("lldp.system_capabilities", n) for n in bit_names(x, LLDP_CAPABILITIES)]
        for x in v["lldp.tlv.enable_system_cap"]:
            facts += [("lldp.enabled_capabilities", n) for n in bit_names(x, LLDP_CAPABILITIES)]
        facts += [("lldp.management_address", x) for x in v["lldp.mgn.addr.ip4"] + v["lldp.mgn.addr.ip6"]]
        for x in v["lldp.media.subtype.caps"]:
            facts += [("lldp.med_capabilities", n) for n in bit_names(x, LLDP_MED_CAPABILITIES)]
        facts += [("lldp.med_device_class", LLDP_MED_CLASSES[int(x) - 1]) for x in v["lldp.media.subtype.class"]]
        for col, field in LLDP_MED_INVENTORY:
            facts += [(field, x) for x in v[col]]
    return facts


def cdp_facts(path):
    """What each CDP message says about its sender, from tshark's CDP dissector; the software
    version's first line, capability bits by name."""
    cols = ["cdp.deviceid", "cdp.portid", "cdp.platform", "cdp.software_version",
            "cdp.capabilities", "cdp.native_vlan", "cdp.nrgyz.ip_address"]
    args = ["-Y", "cdp", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=\x1f"]
    for c in cols:
        args += ["-e", c]
    facts = []
    for row in tshark(path, *args).splitlines():
        v = dict(zip(cols, [c.split("\x1f") if c else [] for c in (row.split("\t") + [""] * len(cols))[:len(cols)]]))
        facts += [("cdp.device_id", x) for x in v["cdp.deviceid"]]
        facts += [("cdp.address", x) for x in v["cdp.nrgyz.ip_address"]]
        facts += [("cdp.port_id", x) for x in v["cdp.portid"]]
        for x in v["cdp.capabilities"]:
            facts += [("cdp.capabilities", n) for n in bit_names(x, CDP_CAPABILITIES)]
        # tshark shows each line of the version as one occurrence; ward keeps the first line.
        facts += [("cdp.software_version", x) for x in v["cdp.software_version"][:1]]
        facts += [("cdp.platform", x) for x in v["cdp.platform"]]
        facts += [("cdp.native_vlan", x) for x in v["cdp.native_vlan"]]
    return facts


# --------------------------------------------------------------- SSDP ----
def ssdp_facts(path):
    """What each NOTIFY and search response says about its sender, from tshark's SSDP
    dissector (HTTP over UDP): `http.server`, `http.location`, and USN/NT/ST, which tshark
    leaves as unknown header lines. An M-SEARCH's ST is what the searcher looks for: skipped."""
    facts = []
    rows = tshark(path, "-Y", "ssdp", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=\x1f",
                  "-e", "http.request.method", "-e", "http.response.code", "-e", "http.server",
                  "-e", "http.location", "-e", "http.unknown_header", "-e", "http.request.line",
                  "-e", "http.response.line")
    for row in rows.splitlines():
        method, code, server, location, *lines = (row.split("\t") + [""] * 7)[:7]
        if method == "M-SEARCH" or (not method and code != "200"):
            continue
        type_header = "nt" if method == "NOTIFY" else "st"
        for v in filter(None, server.split("\x1f")):
            facts.append(("ssdp.server", v.strip()))
        headers = [h for col in lines for h in col.split("\x1f") if ":" in h]
        for h in headers:
            name, value = h.split(":", 1)
            value = value.replace("\\r\\n", "").strip()
            if name.strip().lower() == "usn":
                facts.append(("ssdp.usn", value))
        for v in filter(None, location.split("\x1f")):
            # ward keeps scheme://host:port only (a URL path can carry anything).
            m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@]+)(?:[/?#].*)?$", v.strip())
            if m:
                facts.append(("ssdp.location", m.group(1)))
        for h in headers:
            name, value = h.split(":", 1)
            if name.strip().lower() == type_header:
                facts.append(("ssdp.type", value.replace("\\r\\n", "").strip()))
    return facts


# --------------------------------------------------------------- UPnP ----
UPNP_ELEMENTS = {"deviceType": "ssdp.device_type", "friendlyName": "ssdp.friendly_name",
                 "manufacturer": "ssdp.manufacturer", "modelDescription": "ssdp.model_description",
                 "modelName": "ssdp.model_name", "modelNumber": "ssdp.model_number",
                 "serialNumber": "ssdp.serial_number", "UDN": "ssdp.udn"}


def upnp_facts(path, ports):
    """The allow-listed children of every <device> of each UPnP device description (a 200
    response whose XML root is <root xmlns="urn:schemas-upnp-org:device-1-0">), from tshark's
    XML dissector (PDML: xml.tag nodes nest as the document does, xml.cdata holds the text)."""
    import xml.etree.ElementTree as ET
    decode = [(p, "http") for p in ports]
    pdml = tshark(path, "-Y", "http.response.code == 200 && xml", "-T", "pdml", decode=decode)
    facts = []

    def local(tag_show):
        name = tag_show.lstrip("<").split(None, 1)[0].rstrip(">").rstrip("/")
        return name.rsplit(":", 1)[-1]

    def walk(node, in_device):
        for child in node.findall("field"):
            if child.get("name") != "xml.tag":
                continue
            name = local(child.get("show", ""))
            if name == "device":
                walk(child, True)
            elif in_device and name in UPNP_ELEMENTS:
                text = "".join(c.get("show", "") for c in child.findall("field")
                               if c.get("name") == "xml.cdata").strip()
                if text:
                    facts.append((UPNP_ELEMENTS[name], text))
            else:
                walk(child, False)

    for proto in ET.fromstring(pdml).iter("proto"):
        if proto.get("name") != "xml":
            continue
        for top in proto.findall("field"):
            show = top.get("show", "")
            if top.get("name") == "xml.tag" and local(show) == "root" \
                    and "urn:schemas-upnp-org:device-1-0" in show:
                walk(top, False)
    return facts


# --------------------------------------------------------------- mDNS ----
MDNS_TXT_KEYS = {"model": "mdns.model", "md": "mdns.model", "usb_mdl": "mdns.model",
                 "ty": "mdns.model", "product": "mdns.model",
                 "manufacturer": "mdns.manufacturer", "usb_mfg": "mdns.manufacturer",
                 "fw": "mdns.software_version", "sw": "mdns.software_version",
                 "serial": "mdns.serial"}
SERVICE_TYPE_RE = re.compile(r"^(_[^.]+\._(?:tcp|udp))(?:\.|$)", re.I)
INSTANCE_RE = re.compile(r"^(.*)\.(_[^.]+\._(?:tcp|udp)\.[^_]*)$", re.I)


def mdns_facts(path):
    """What each mDNS message announces about its sender, from tshark's DNS dissector (its
    JSON tree, one object per record): the records of responses and the authority and
    additional records of queries (probes), never questions or a query's known answers.
    Service types are PTR owners, instances the first label of PTR targets and SRV/TXT owners
    under a service type, host names A/AAAA owners and SRV targets, TXT values only for the
    allow-listed keys."""
    out = tshark(path, "-Y", "mdns", "-T", "json", "-J", "mdns")
    # Keep repeated keys (several dns.txt strings in one record): pairs, not dicts.
    packets = json.loads(out, object_pairs_hook=lambda kv: kv)
    facts = []

    def get(pairs, key):
        return [v for k, v in pairs if k == key]

    def inst(owner):
        m = INSTANCE_RE.match(owner)
        if m:
            facts.append(("mdns.instance", m.group(1)))
            facts.append(("mdns.service_type", SERVICE_TYPE_RE.match(m.group(2)).group(1)))

    for pkt in packets:
        layers = get(get(pkt, "_source")[0], "layers")[0]
        for m in get(layers, "mdns"):
            response = int(get(get(m, "dns.flags_tree")[0], "dns.flags.response")[0])
            sections = ["Authoritative nameservers", "Additional records"]
            if response:
                sections.insert(0, "Answers")
            for sec in sections:
                for recs in get(m, sec):
                    for summary, rec in recs:
                        owner, _, rest = summary.partition(": type ")
                        rtype = rest.split(",")[0]
                        if rtype == "PTR":
                            target = get(rec, "dns.ptr.domain_name")[0]
                            st = SERVICE_TYPE_RE.match(owner)
                            if st and not owner.lower().startswith("_services."):
                                facts.append(("mdns.service_type", st.group(1)))
                                if target.lower().endswith("." + owner.lower()):
                                    facts.append(("mdns.instance", target[:-len(owner) - 1]))
                            elif owner.lower().endswith(".arpa"):
                                facts.append(("mdns.host_name", target))
                            elif SERVICE_TYPE_RE.match(target):
                                facts.append(("mdns.service_type",
                                              SERVICE_TYPE_RE.match(target).group(1)))
                        elif rtype == "SRV":
                            inst(owner)
                            facts.append(("mdns.host_name", get(rec, "dns.srv.target")[0]))
                        elif rtype == "TXT":
                            inst(owner)
                            for kv in get(rec, "dns.txt"):
                                k, eq, v = kv.partition("=")
                                if eq and k.lower() in MDNS_TXT_KEYS:
                                    facts.append((MDNS_TXT_KEYS[k.lower()], v.strip()))
                        elif rtype in ("A", "AAAA"):
                            facts.append(("mdns.host_name", owner))
    return facts


# -------------------------------------------------------------- LLMNR ----
def llmnr_facts(path):
    """From tshark's LLMNR dissector: a query's question name (llmnr.queried_name) and the
    owner names of a response's A/AAAA answers (llmnr.name, the responder's own names)."""
    facts = []
    rows = tshark(path, "-Y", "llmnr", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
                  "-e", "dns.flags.response", "-e", "dns.qry.name", "-e", "dns.resp.name",
                  "-e", "dns.resp.type")
    for row in rows.splitlines():
        response, qname, names, types = (row.split("\t") + ["", "", ""])[:4]
        if response in ("0", "False"):
            facts.append(("llmnr.queried_name", qname))
            continue
        for name, rtype in zip(names.split("|") if names else [], types.split("|")):
            if rtype in ("1", "28"):
                facts.append(("llmnr.name", name))
    return facts


# -------------------------------------------------------------- NBNS ----
NBNS_NAME_RE = re.compile(r"^(.*?)\s*<([0-9a-fA-F]{2})>")


def nbns_facts(path):
    """From tshark's NBNS dissector: the names of registrations and refreshes (opcodes 5, 8,
    9, 15) and of positive query responses with RA clear (the owner's own answer); a name whose
    NB_FLAGS has the group bit is a group, else a unique name with its suffix."""
    facts = []
    rows = tshark(path, "-Y", "nbns", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
                  "-e", "nbns.flags.response", "-e", "nbns.flags.opcode", "-e", "nbns.flags.recavail",
                  "-e", "nbns.flags.rcode", "-e", "nbns.name", "-e", "nbns.nb_flags.group")
    for row in rows.splitlines():
        response, opcode, ra, rcode, names, groups = (row.split("\t") + [""] * 6)[:6]
        response = response in ("1", "True")
        claim = not response and opcode in ("5", "8", "9", "15")
        owner = response and opcode == "0" and ra in ("0", "False", "") and rcode in ("0", "")
        if not (claim or owner):
            continue
        group = groups.split("|")[0] in ("1", "True")
        for n in names.split("|"):
            m = NBNS_NAME_RE.match(n)
            if not m:
                continue
            if group:
                facts.append(("nbns.group", m.group(1)))
            else:
                facts.append(("nbns.name", m.group(1)))
                facts.append(("nbns.suffix", m.group(2).lower()))
    return facts


# ------------------------------------------------------------- DHCPv6 ----
DHCPV6_CLIENT_TYPES = {"1", "3", "4", "5", "6", "8", "9", "11"}


def dhcpv6_facts(path):
    """From tshark's DHCPv6 dissector, client messages only: the Client Identifier's DUID
    (DUIDs pair with options 1 and 2 in wire order) and its DUID-LLT/LL link-layer address,
    option 16's enterprise number and data, option 39's domain name."""
    facts = []
    rows = tshark(path, "-Y", "dhcpv6", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
                  "-e", "dhcpv6.msgtype", "-e", "dhcpv6.option.type", "-e", "dhcpv6.duid.bytes",
                  "-e", "dhcpv6.duid.type", "-e", "dhcpv6.duidllt.link_layer_addr",
                  "-e", "dhcpv6.vendorclass.enterprise", "-e", "dhcpv6.vendorclass.data",
                  "-e", "dhcpv6.client_domain", "-e", "dhcpv6.duidll.link_layer_addr")
    for row in rows.splitlines():
        cols = (row.split("\t") + [""] * 9)[:9]
        msgtype, otypes, duids, dtypes, llt, ent, data, domain, ll = [c.split("|") if c else [] for c in cols]
        if not msgtype or msgtype[0] not in DHCPV6_CLIENT_TYPES:
            continue
        holders = [t for t in otypes if t in ("1", "2")]
        llt_iter, ll_iter = iter(llt), iter(ll)
        for holder, duid, dtype in zip(holders, duids, dtypes):
            # DUID-LLT (type 1) and DUID-LL (type 3) carry the link-layer address.
            mac = (next(llt_iter, None) if dtype == "1"
                   else next(ll_iter, None) if dtype == "3" else None)
            if holder == "1":
                facts.append(("dhcpv6.duid", duid.replace(":", "")))
                if mac:
                    facts.append(("dhcpv6.client_mac", mac))
        facts += [("dhcpv6.vendor_enterprise", e) for e in ent]
        facts += [("dhcpv6.vendor_class", d) for d in data]
        facts += [("dhcpv6.fqdn", d.rstrip(".")) for d in domain]
    return facts


# ---------------------------------------------------------------- DNS ----
# Question type mnemonics ward reports (ward_protocols::dns::type_name); others as TYPE<n>.
DNS_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
             33: "SRV", 35: "NAPTR", 43: "DS", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS",
             255: "ANY", 257: "CAA"}


def dns_facts(path):
    """From tshark's DNS dissector: a query's question name and type (dns.queried_name,
    dns.query_type), and the owner names of a response's answer records (the first
    dns.count.answers of dns.resp.name, which lists answers before the other sections)."""
    facts = []
    rows = tshark(path, "-Y", "dns", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
                  "-e", "dns.flags.response", "-e", "dns.qry.name", "-e", "dns.qry.type",
                  "-e", "dns.count.answers", "-e", "dns.resp.name")
    for row in rows.splitlines():
        response, qname, qtype, answers, names = (row.split("\t") + [""] * 5)[:5]
        if response in ("0", "False"):
            facts.append(("dns.queried_name", qname))
            t = int(qtype)
            facts.append(("dns.query_type", DNS_TYPES.get(t, "TYPE%d" % t)))
            continue
        for name in (names.split("|") if names else [])[:int(answers or 0)]:
            if name and name != "<Root>":
                facts.append(("dns.answered_name", name))
    return facts


# ---------------------------------------------------------------- SDC ----
WSD_NS = "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01"
WSA_NS = "http://www.w3.org/2005/08/addressing"
DPWS_NS = "http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01"
SDC_KNOWN_NS = {DPWS_NS: "dpws", "http://standards.ieee.org/downloads/11073/11073-20702-2016": "mdpws",
                "http://standards.ieee.org/downloads/11073/11073-20701-2018": "sdc", WSD_NS: "wsd"}
SDC_LOC_KEYS = {"fac": "sdc.location_facility", "bldng": "sdc.location_building",
                "flr": "sdc.location_floor", "poc": "sdc.location_point_of_care",
                "rm": "sdc.location_room", "bed": "sdc.location_bed"}
XML_TAG_RE = re.compile(r"^<([^\s/>]+)")


def xml_documents(path):
    """[(transport, root)] for every XML document tshark's XML dissector shows (over UDP with
    its UDP heuristic on, in HTTP bodies): each element a dict with its name, the namespace
    declarations on it, its text (tshark's xml.cdata, entities still escaped) and children."""
    import xml.etree.ElementTree as ET
    out = tshark(path, "-o", "xml.heuristic:TRUE", "-o", "xml.heuristic_udp:TRUE",
                 "-Y", "xml", "-T", "pdml")
    docs = []

    def element(f):
        m = XML_TAG_RE.match(f.get("show", ""))
        el = {"name": m.group(1) if m else "", "ns": {}, "text": "", "children": []}
        for c in f.findall("field"):
            n = c.get("name")
            if n == "xml.attribute":
                k, _, v = c.get("show", "").partition("=")
                if k == "xmlns" or k.startswith("xmlns:"):
                    el["ns"][k[6:]] = v.strip().strip('"\'')
            elif n == "xml.cdata":
                el["text"] += c.get("show", "")
            elif n == "xml.tag":
                el["children"].append(element(c))
        return el

    for pkt in ET.fromstring(out).findall("packet"):
        protos = [p.get("name") for p in pkt.findall("proto")]
        transport = "udp" if "udp" in protos else "tcp"
        for proto in pkt.iter("proto"):
            if proto.get("name") != "xml":
                continue
            for f in proto.findall("field"):
                if f.get("name") == "xml.tag":
                    docs.append((transport, element(f)))
    return docs


def xml_walk(el, scope=None):
    """Yields (element, namespace uri, local name, namespaces in scope) depth first."""
    scope = dict(scope or {})
    scope.update(el["ns"])
    prefix, _, local = el["name"].rpartition(":")
    yield el, scope.get(prefix, ""), local, scope
    for c in el["children"]:
        yield from xml_walk(c, scope)


def xml_text(el):
    import html
    return html.unescape(el["text"]).strip()


def sdc_children(el, scope):
    """(child, ns, local, scope) of the direct children of el."""
    for c in el["children"]:
        s = dict(scope)
        s.update(c["ns"])
        prefix, _, local = c["name"].rpartition(":")
        yield c, s.get(prefix, ""), local, s


def sdc_cut_url(url):
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)", url)
    if not m:
        return None
    host = m.group(2).rpartition("@")[2]
    return "%s://%s" % (m.group(1).lower(), host) if host else None


def sdc_facts(path):
    """WS-Discovery facts from tshark's XML dissector (UDP datagrams): the message kind (the
    Action's last segment); of a Hello, a Bye or a single ProbeMatch/ResolveMatch the EPR
    address, the Types QNames resolved against the declarations in scope, the XAddrs cut to
    scheme://host:port, the location scope's query parts, the sdc.cdc.type code and the
    MetadataVersion. Nothing is read from a Probe or Resolve."""
    from urllib.parse import unquote
    facts = []
    for transport, root in xml_documents(path):
        if transport != "udp":
            continue
        walk = list(xml_walk(root))
        action = next((xml_text(e) for e, ns, local, _ in walk
                       if ns == WSA_NS and local == "Action"), "")
        if not action.startswith(WSD_NS + "/"):
            continue
        kind = action[len(WSD_NS) + 1:]
        facts.append(("sdc.message", kind))
        if kind in ("Probe", "Resolve"):
            continue
        body_el = [(e, s) for e, ns, local, s in walk if ns == WSD_NS and local == kind]
        if not body_el:
            continue
        el, scope = body_el[0]
        if kind in ("ProbeMatches", "ResolveMatches"):
            matches = [(c, s) for c, ns, local, s in sdc_children(el, scope)
                       if ns == WSD_NS and local == kind[:-2]]
            if len(matches) != 1:
                continue
            el, scope = matches[0]
        for c, ns, local, s in sdc_children(el, scope):
            if ns == WSA_NS and local == "EndpointReference":
                for a, ans, alocal, _ in sdc_children(c, s):
                    if ans == WSA_NS and alocal == "Address":
                        facts.append(("sdc.epr", xml_text(a)))
            elif ns != WSD_NS:
                continue
            elif local == "Types":
                for q in xml_text(c).split():
                    prefix, _, name = q.rpartition(":")
                    uri = s.get(prefix)
                    if uri is None:
                        continue
                    facts.append(("sdc.type", "%s:%s" % (SDC_KNOWN_NS[uri], name)
                                  if uri in SDC_KNOWN_NS else "{%s}%s" % (uri, name)))
            elif local == "XAddrs":
                for u in xml_text(c).split():
                    cut = sdc_cut_url(u)
                    if cut:
                        facts.append(("sdc.xaddr", cut))
            elif local == "MetadataVersion":
                facts.append(("sdc.metadata_version", xml_text(c)))
            elif local == "Scopes":
                for sc in xml_text(c).split():
                    scheme, _, rest = sc.partition(":")
                    if scheme.lower() == "sdc.ctxt.loc" and "?" in rest:
                        for pair in rest.split("?", 1)[1].split("#")[0].split("&"):
                            k, eq, v = pair.partition("=")
                            if eq and k in SDC_LOC_KEYS and unquote(v):
                                facts.append((SDC_LOC_KEYS[k], unquote(v)))
                    elif scheme.lower() == "sdc.cdc.type":
                        parts = (rest[1:] if rest.startswith("/") else rest).split("/")
                        if len(parts) == 3 and unquote(parts[2]):
                            cs = unquote(parts[0])
                            code = unquote(parts[2])
                            facts.append(("sdc.device_class", code if cs in (
                                "", "urn:oid:1.2.840.10004.1.1.1.0.0.1") else "%s#%s" % (cs, code)))
    return facts


def sdc_metadata_facts(path):
    """DPWS ThisModel / ThisDevice values of the HTTP bodies tshark's XML dissector shows."""
    facts = []
    model = {"Manufacturer": "sdc.manufacturer", "ModelName": "sdc.model_name",
             "ModelNumber": "sdc.model_number", "ModelUrl": "sdc.model_url"}
    device = {"FriendlyName": "sdc.friendly_name", "FirmwareVersion": "sdc.firmware_version",
              "SerialNumber": "sdc.serial_number"}
    for transport, root in xml_documents(path):
        if transport != "tcp":
            continue
        for el, ns, local, scope in xml_walk(root):
            if ns != DPWS_NS or local not in ("ThisModel", "ThisDevice"):
                continue
            names = model if local == "ThisModel" else device
            for c, cns, clocal, _ in sdc_children(el, scope):
                if cns == DPWS_NS and clocal in names and xml_text(c):
                    facts.append((names[clocal], xml_text(c)))
    return facts
# --------------------------------------------------------------- ASTM ----
ASTM_FRAME_RE = re.compile(rb"\x02([0-7])(.*?)([\x03\x17])([0-9A-Fa-f]{2})\r\n", re.S)


def astm_facts(path, streams):
    """Header facts of every ASTM session, read with the `astm` package's own codec (tshark has
    no ASTM dissector): frames split at STX/ETX|ETB with their checksums verified by the codec,
    intermediate (ETB) frames joined, each record decoded by astm.codec.decode_record. Record
    types of each message (H to L) in order of first appearance."""
    from astm import codec
    facts = []
    for client, server in streams:
        for side in (client, server):
            record, types = b"", []
            for m in ASTM_FRAME_RE.finditer(side):
                frame = m.group(0)
                if codec.make_checksum(frame[1:m.end(3) - m.start(0)]) != m.group(4).upper():
                    raise Failure("%s: ASTM frame with a bad checksum" % path)
                record += m.group(2)
                if m.group(3) == b"\x17":
                    continue
                for raw in record.split(b"\r"):
                    if not raw:
                        continue
                    rec = codec.decode_record(raw, "latin-1")
                    t = rec[0].upper()
                    if t == "H":
                        types = []
                        facts.extend(astm_header_facts(rec))
                    if t not in types:
                        types.append(t)
                    if t == "L" and types and types[0] == "H":
                        facts.append(("astm.record_types", ",".join(types)))
                record = b""
    return facts


def astm_header_facts(rec):
    def text(v):
        if v is None:
            return ""
        if isinstance(v, list):
            # A repeated field: the first repetition; components joined with ^.
            if v and isinstance(v[0], list):
                v = v[0]
            return "^".join(x or "" for x in v).rstrip("^")
        return v

    def get(n):
        return rec[n - 1] if len(rec) >= n else None

    out = []
    sender = get(5)
    if sender:
        out.append(("astm.sender", text(sender)))
        comps = sender if isinstance(sender, list) else [sender]
        for name, c in zip(["astm.sender_manufacturer", "astm.sender_model",
                            "astm.sender_software_version", "astm.instrument_id"], comps):
            if c:
                out.append((name, c))
    for n, name in ((10, "astm.receiver_id"), (12, "astm.processing_id"), (13, "astm.version")):
        if get(n):
            out.append((name, text(get(n))))
    return out


def udp_payloads(path):
    out = []
    for h in tshark(path, "-T", "fields", "-e", "udp.payload").split():
        out.append(bytes.fromhex(h.replace(":", "")))
    return out


# -------------------------------------------------------- IntelliVue ----
def intellivue_facts(path):
    """tshark has no IntelliVue dissector: its UDP payloads are walked here, independently of
    ward, along the Programming Guide's layouts. Connect Indication (event 0x0d17, attribute
    list at 28; real monitors name NOM_MOC_MDS_COMPOS_SINGLE_BED, 0x23, as its object) and MDS
    Create Event Report (0xe100 session, MDS object 0x21, event 0x0d06, list at 34); from the
    lists NOM_ATTR_ID_MODEL, NOM_ATTR_SYS_ID (6 or 8 octets), NOM_ATTR_ID_PROD_SPECN (product
    component preferred for serial / part number; a revision of dashes is none) and
    NOM_ATTR_PCOL_SUPPORT. Labels end at their first NUL, surrounding whitespace dropped."""
    def u16(b, i):
        return struct.unpack_from("!H", b, i)[0]

    def lab(b, i):
        n = u16(b, i)
        return b[i + 2:i + 2 + n].split(b"\x00")[0].strip().decode("ascii"), i + 2 + n

    names = {1: "serial", 2: "part_number", 3: "hw_revision", 4: "sw_revision",
             5: "fw_revision", 6: "protocol_revision"}
    facts = []
    for p in udp_payloads(path):
        if len(p) < 28 or u16(p, 4) != 1:
            continue
        if u16(p, 24) == 0x0D17 and p[:2] != b"\xe1\x00" and u16(p, 14) in (0x21, 0x23):
            at = 28
        elif u16(p, 24) == 0x0D06 and p[:2] == b"\xe1\x00" and u16(p, 14) == 0x21:
            at = 34
        else:
            continue
        count, pos = u16(p, at), at + 4
        for _ in range(count):
            aid, alen = u16(p, pos), u16(p, pos + 2)
            v = p[pos + 4:pos + 4 + alen]
            if aid == 0x0928:
                man, j = lab(v, 0)
                facts += [("intellivue.manufacturer", man), ("intellivue.model", lab(v, j)[0])]
            elif aid == 0x0984 and u16(v, 0) in (6, 8):
                facts.append(("intellivue.system_id",
                              ":".join("%02x" % x for x in v[2:2 + u16(v, 0)])))
            elif aid == 0x092D:
                chosen, j = {}, 4
                for _ in range(u16(v, 0)):
                    t, comp = u16(v, j), u16(v, j + 2)
                    val, j = lab(v, j + 4)
                    if t in names and (t not in chosen or (comp == 8 and not chosen[t][0])):
                        if t > 2 or comp == 8:
                            chosen[t] = (comp == 8, val)
                facts += [("intellivue." + names[t], chosen[t][1]) for t in sorted(chosen)
                          if chosen[t][1].strip("-")]
            elif aid == 0xF101:
                for k in range(u16(v, 0)):
                    appl, trans, port = struct.unpack_from("!HHH", v, 4 + 8 * k)
                    facts.append(("intellivue.protocol", "%s/%s/%d" % (
                        {1: "acse", 5: "data_out"}.get(appl, str(appl)),
                        {1: "udp"}.get(trans, str(trans)), port)))
            pos += 4 + alen
    return facts


# ------------------------------------------------------------ POCT1-A ----
POCT1A_ROOT = re.compile(rb"<([A-Z]{3}\.R[0-9]{2})[\s>/]")
POCT1A_ELEMENTS = {b"DEV.vendor_id": "vendor_id", b"DEV.model_id": "model_id",
                   b"DEV.serial_id": "serial_id", b"DEV.device_id": "device_id",
                   b"DEV.manufacturer_name": "manufacturer_name", b"DEV.hw_version": "hw_version",
                   b"DEV.sw_version": "sw_version", b"DST.condition_cd": "condition"}


def poct1a_facts(path, streams):
    """The reassembled TCP payloads (tshark's follow), split into XML documents by their root
    element with Python's own XML parser: every root's name, and from HEL.R01 / DST.R01 the V
    attribute of the allow-listed elements."""
    import xml.etree.ElementTree as ET
    facts = []
    for side in (x for pair in streams for x in pair):
        pos = 0
        while True:
            m = POCT1A_ROOT.search(side, pos)
            if not m:
                break
            name = m.group(1)
            close = b"</" + name + b">"
            end = side.find(close, m.start())
            if end < 0:
                break
            end += len(close)
            facts.append(("poct1a.message_type", name.decode()))
            if name in (b"HEL.R01", b"DST.R01"):
                root = ET.fromstring(side[m.start():end])
                for el in root.iter():
                    field = POCT1A_ELEMENTS.get(el.tag.encode())
                    if field and el.get("V"):
                        facts.append(("poct1a." + field, el.get("V")))
            pos = end
    return facts


# ---------------------------------------------------------------- BCC ----
BCC_PARAMS = {b"GNMODEL": "bcc.pump_model", b"INSERNUM": "bcc.pump_serial",
              b"INDTNR": "bcc.dianet_type", b"VERSION": "bcc.protocol_version"}


def bcc_facts(path, streams):
    """Frames SOH..EOT of the reassembled streams, unstuffed (EX->D, EE->E, ex->d, ee->e),
    checksum-checked; the bed id before '>' and the allow-listed RS-separated records."""
    facts = []
    for side in (x for pair in streams for x in pair):
        for raw in re.findall(rb"\x01[^\x04]*\x04", side):
            f = re.sub(rb"EX|EE|ex|ee", lambda m: {b"EX": b"D", b"EE": b"E", b"ex": b"d",
                                                   b"ee": b"e"}[m.group(0)], raw)
            end = len(f) - 7
            if f[6:7] != b"\x02" or f[end:end + 1] not in (b"\x03", b"\x17"):
                continue
            if int(f[end + 1:end + 6]) != sum(f[:end + 1]) % 256:
                continue
            bed, payload = f[7:end].split(b">", 1)
            facts.append(("bcc.bed_id", bed.decode()))
            for rec in payload.split(b"\x1e"):
                parts = rec.split(b",", 3)
                if len(parts) == 4 and parts[2] in BCC_PARAMS:
                    facts.append((BCC_PARAMS[parts[2]], parts[3].decode()))
    return facts


# ------------------------------------------------------------- driver ----
def dedupe(facts):
    seen, out = set(), []
    for f, v in facts:
        if (f, v) not in seen:
            seen.add((f, v))
            out.append((f, v))
    return out


def public_dir():
    """Third-party captures: read from ../shared/captures/public/ beside the checkout (or
    $PUBLIC_CAPTURES), never copied into the fixture directory."""
    d = os.environ.get("PUBLIC_CAPTURES") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "captures", "public")
    return os.path.normpath(d)


def capture_path(fixdir, name):
    if name.startswith("public/"):
        return os.path.join(public_dir(), name[len("public/"):])
    return os.path.join(fixdir, name)


def build(fixdir, spec, generated):
    path = capture_path(fixdir, spec["file"])
    fmt, lt, frames = file_info(path)
    entry = {"file": spec["file"], "format": fmt, "linktype": lt}
    ports = {}
    facts = []
    streams = None
    if spec.get("dicom"):
        ports["dicom"] = spec["dicom"]
        facts += dicom_facts(path, spec["dicom"])
    if spec.get("hl7"):
        ports["hl7"] = spec["hl7"]
        streams = tcp_streams(path)
        facts += hl7_facts(path, spec["hl7"], streams)
    if spec.get("dhcp"):
        ports["dhcp"] = [67, 68]
        facts += dhcp_facts(path)
    if spec.get("http"):
        ports["http"] = spec["http"]
        facts += http_facts(path, spec["http"])
    if spec.get("ssh"):
        facts += ssh_facts(path)
    if spec.get("tls"):
        facts += tls_facts(path)
    if spec.get("mdns"):
        facts += mdns_facts(path)
    if spec.get("ssdp"):
        facts += ssdp_facts(path)
    if spec.get("upnp"):
        facts += upnp_facts(path, spec.get("http", []))
    if spec.get("snmp"):
        facts += snmp_facts(path)
    if spec.get("llmnr"):
        facts += llmnr_facts(path)
    if spec.get("nbns"):
        facts += nbns_facts(path)
    if spec.get("dhcpv6"):
        facts += dhcpv6_facts(path)
    if spec.get("dns"):
        facts += dns_facts(path)
    if spec.get("lldp"):
        facts += lldp_facts(path) + cdp_facts(path)

    if spec.get("sdc"):
        discovery = sdc_facts(path)
        metadata = sdc_metadata_facts(path)
        # The metadata oracle runs either way: the scenario must have put it on the wire.
        missing = [fv for fv in SDC_METADATA_FACTS if fv not in metadata]
        if generated and missing:
            raise Failure("%s: DPWS metadata not found: %r" % (path, missing))
        # Sorted: the consumer's Probe and the provider's Hello race, and the manifest is
        # compared as text.
        facts += sorted(discovery) + (metadata if spec.get("sdc_metadata") else [])
    if spec.get("astm"):
        streams = tcp_streams(path)
        facts += astm_facts(path, streams)
    if spec.get("intellivue"):
        facts += intellivue_facts(path)
    if spec.get("bcc"):
        streams = tcp_streams(path)
        facts += bcc_facts(path, streams)
    if spec.get("poct1a"):
        streams = tcp_streams(path)
        facts += poct1a_facts(path, streams)
    if spec.get("fhir"):
        facts += fhir_facts(tcp_streams(path))
    facts = dedupe(facts)
    if ports:
        entry["ports"] = ports
    stacks = vlan_stacks(frames)
    if stacks:
        if len(stacks) != 1:
            raise Failure("%s: several VLAN tag stacks %r" % (path, stacks))
        entry["vlans"] = [vid for _, vid in stacks[0]]
        entry["vlan_tpids"] = ["0x%04x" % tpid for tpid, _ in stacks[0]]
    if spec.get("vlans") is not None and entry.get("vlans") != spec["vlans"]:
        raise Failure("%s: vlans %r, expected %r" % (path, entry.get("vlans"), spec["vlans"]))
    entry["facts"] = [{"field": f, "value": v} for f, v in facts]
    entry["canaries"] = list(spec["canaries"])

    # Canary checks on the reassembled TCP payloads.
    if streams is None:
        streams = tcp_streams(path) if "tcp" in tshark(path, "-T", "fields", "-e", "frame.protocols") else []
    wire = b"\n".join(a + b"\n" + b for a, b in (streams or []))
    if spec.get("mdns") or spec.get("ssdp") or spec.get("snmp") or spec.get("sdc") or spec.get("intellivue"):
        wire += b"\n" + b"\n".join(udp_payloads(path))
    for c in spec["canaries"]:
        # Sealed canaries travel inside TLS application data: they must not be readable on
        # the wire (and, like the others, never reach any output).
        if spec.get("sealed"):
            if c.encode() in wire or c.split("^")[0].encode() in wire:
                raise Failure("%s: sealed canary %r readable on the wire" % (path, c))
        elif c.encode() not in wire:
            raise Failure("%s: canary %r not on the wire" % (path, c))
    if spec.get("sealed"):
        entry["sealed"] = spec["sealed"]
    # A capture without canaries must say why, and the wire must bear it out: no DICOM data-set
    # PDV, no patient-module element tag, no HL7 patient or result segment.
    if not spec["canaries"]:
        reason = spec.get("no_patient_data")
        if not reason:
            raise Failure("%s: no canaries and no no_patient_data reason" % path)
        entry["no_patient_data"] = reason
        for marker in (b"PID|", b"OBX|", b"NK1|", b"\x10\x00\x10\x00", b"\x10\x00\x20\x00"):
            if marker in wire:
                raise Failure("%s: %r on the wire, but it claims no patient data" % (path, marker))
        if spec.get("dicom"):
            flags = tshark(path, "-T", "fields", "-e", "dicom.pdv.flags",
                           decode=[(p, "dicom") for p in spec["dicom"]])
            for f in re.findall(r"0x[0-9a-f]+", flags):
                if not int(f, 16) & 1:
                    raise Failure("%s: a DICOM data-set PDV, but it claims no patient data" % path)
    if generated:
        for tok in set(re.findall(rb"CANARY[A-Z0-9_\-]*", wire)):
            if not any(tok.decode() in c for c in spec["canaries"]):
                raise Failure("%s: wire token %r not covered by the canary list" % (path, tok))
        missing = [fv for fv in spec["expect"] if fv not in facts]
        missing += [f for f in spec.get("expect_fields", []) if not any(g == f for g, _ in facts)]
        if missing:
            raise Failure("%s: expected facts not found: %r" % (path, missing))
        for f, v in facts:
            if "CANARY" in v:
                raise Failure("%s: canary leaked into fact %s=%s" % (path, f, v))
    return entry


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    fixdir = sys.argv[1]
    out = {"fixtures": []}
    try:
        # WARD_ONLY_PRESENT=1 (generate.sh with WARD_SCENARIOS): build entries for the
        # generated captures that exist, so one scenario can be developed alone.
        only_present = os.environ.get("WARD_ONLY_PRESENT") == "1"
        for spec in GENERATED:
            if only_present and not os.path.exists(os.path.join(fixdir, spec["file"])):
                continue
            out["fixtures"].append(build(fixdir, spec, True))
        for spec in PUBLIC:
            if not os.path.exists(capture_path(fixdir, spec["file"])):
                raise Failure("%s: public capture missing (looked in %s; set PUBLIC_CAPTURES)"
                              % (spec["file"], public_dir()))
            out["fixtures"].append(build(fixdir, spec, False))
    except Failure as e:
        print("build_manifest: %s" % e, file=sys.stderr)
        return 1
    # The devices each capture holds (the truth classification is measured against): every
    # capture must state them, so a new fixture cannot escape the figures.
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "expected-devices.toml"), "rb") as f:
        expected = tomllib.load(f)
    for entry in out["fixtures"]:
        devices = expected.get(entry["file"])
        if not devices:
            print("build_manifest: %s: no devices in expected-devices.toml" % entry["file"],
                  file=sys.stderr)
            return 1
        entry["devices"] = devices
    with open(os.path.join(fixdir, "manifest.json"), "w") as f:
        json.dump(out, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print("manifest.json: %d fixtures" % len(out["fixtures"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
