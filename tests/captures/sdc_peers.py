#!/usr/bin/env python3
"""IEEE 11073 SDC peers for the sdc scenario: the PyPI package sdc11073 on both ends.

`provider`: a fictional SpO2 monitor ("WardTestMed WardOx 300") built with sdc11073's
SdcProvider on a minimal MDIB (an MDS of class MDC_DEV_ANALY_SAT_O2_MDS, a location context and
a patient context), without TLS (ssl_context_container None) and without HTTP compression, so
discovery (WS-Discovery over UDP 3702) and the DPWS metadata / BICEPS messages over HTTP are
cleartext on the wire. The location (facility/building/floor/room/bed/point of care) is set with
`set_location`, so it goes into the Hello's and ProbeMatches' `sdc.ctxt.loc:` scope. The
patient context is associated with CANARY names: they travel in the GetMdib response (and
reports), and ward must never extract them.

`consumer`: sdc11073's WSDiscovery probes for medical devices, SdcConsumer connects to the
first one found (DPWS GetMetadata, then GetMdib), then disconnects.
"""
import argparse
import sys
import time
import uuid

HTTP_PORT = 6464
EPR = uuid.UUID("5741524e-5344-4300-8000-574f58333030")  # "WARNSDC" + "WOX300"
MODEL = dict(manufacturer="WardTestMed", manufacturer_url="http://wardtestmed.example",
             model_name="WardOx 300", model_number="WOX-300", model_url="http://wardtestmed.example/wox300",
             presentation_url="http://wardtestmed.example/wox300/ui")
DEVICE = dict(friendly_name="WardOx 300 Bed 7", firmware_version="3.4.1", serial_number="WOX300-0042")
LOCATION = dict(fac="WARDHOSP", bldng="NorthWing", flr="3", rm="ICU-12", bed="Bed7", poc="ICU")
# Patient names and identifiers: only ever in the patient context state (GetMdib, reports).
PATIENT = dict(given="CANARYSDCGIVEN", family="CANARYSDCFAMILY", birthname="CANARYSDCBIRTH",
               mrn="CANARY-MRN-SDC-0001")

MDIB = b"""<?xml version="1.0" encoding="UTF-8"?>
<msg:GetMdibResponse
    xmlns:ext="http://standards.ieee.org/downloads/11073/11073-10207-2017/extension"
    xmlns:msg="http://standards.ieee.org/downloads/11073/11073-10207-2017/message"
    xmlns:pm="http://standards.ieee.org/downloads/11073/11073-10207-2017/participant"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    SequenceId="urn:oid:1">
  <msg:Mdib SequenceId="urn:oid:1">
    <pm:MdDescription>
      <pm:Mds Handle="mds0" SafetyClassification="MedA">
        <!-- ISO/IEEE 11073-10101 partition 1: MDC_DEV_ANALY_SAT_O2 4104 (65536 + 4104 = 69640);
             its MDS, VMD and channel are +1, +2, +3 (69642 MDC_DEV_ANALY_SAT_O2_VMD as in IHE
             PCD-01 monitor messages) -->
        <pm:Type Code="69641"/>
        <pm:SystemContext Handle="sc.mds0">
          <pm:PatientContext Handle="pc.mds0"/>
          <pm:LocationContext Handle="lc.mds0"/>
        </pm:SystemContext>
        <pm:Vmd Handle="vmd0" SafetyClassification="MedA">
          <pm:Type Code="69642"/>
          <pm:Channel Handle="ch0.vmd0" SafetyClassification="MedA">
            <pm:Type Code="69643"/>
            <pm:Metric Handle="spo2.ch0.vmd0" SafetyClassification="MedA"
                xsi:type="pm:NumericMetricDescriptor" MetricCategory="Msrmt"
                MetricAvailability="Cont" Resolution="1">
              <!-- MDC_PULS_OXIM_SAT_O2 -->
              <pm:Type Code="150456"/>
              <!-- MDC_DIM_PERCENT -->
              <pm:Unit Code="262688"/>
            </pm:Metric>
          </pm:Channel>
        </pm:Vmd>
      </pm:Mds>
    </pm:MdDescription>
  </msg:Mdib>
</msg:GetMdibResponse>
"""


def provider(ip, seconds):
    from sdc11073 import location, provider as prov_mod, wsdiscovery
    from sdc11073.mdib import ProviderMdib
    from sdc11073.xml_types import pm_qnames as pm, pm_types
    from sdc11073.xml_types.dpws_types import ThisDeviceType, ThisModelType

    from sdc11073.httpserver import httpserverimpl

    # A fixed HTTP port (sdc11073 lets the OS choose one), so the XAddrs in the manifest are
    # the same on every run.
    class FixedPort(httpserverimpl._ThreadingHTTPServer):
        def __init__(self, logger, addr, *args, **kwargs):
            super().__init__(logger, (addr[0], HTTP_PORT), *args, **kwargs)

    httpserverimpl._ThreadingHTTPServer = FixedPort
    wsd = wsdiscovery.WSDiscovery(ip)
    wsd.start()
    mdib = ProviderMdib.from_string(MDIB)
    prov = prov_mod.SdcProvider(ws_discovery=wsd, this_model=ThisModelType(**MODEL),
                                this_device=ThisDeviceType(**DEVICE), device_mdib_container=mdib,
                                epr=EPR, ssl_context_container=None)
    prov.set_used_compression()  # no gzip/lz4: the HTTP bodies stay readable on the wire
    prov.start_all(start_rtsample_loop=False)
    with prov.mdib.context_state_transaction() as mgr:
        handle = prov.mdib.descriptions.NODETYPE.get_one(pm.PatientContextDescriptor).Handle
        st = mgr.mk_context_state(handle)
        st.CoreData.Givenname = PATIENT["given"]
        st.CoreData.Familyname = PATIENT["family"]
        st.CoreData.Birthname = PATIENT["birthname"]
        st.ContextAssociation = pm_types.ContextAssociation.ASSOCIATED
        st.Identification = [pm_types.InstanceIdentifier("urn:oid:1.2.3.4.5", extension_string=PATIENT["mrn"])]
    # Sends the Hello with the location scope.
    prov.set_location(location.SdcLocation(**LOCATION),
                      [pm_types.InstanceIdentifier("Validator", extension_string="System")])
    print("published", prov.epr_urn, flush=True)
    try:
        time.sleep(seconds)
    finally:
        prov.stop_all()  # Bye
        wsd.stop()
    print("stopped", flush=True)
    return 0


def consumer(ip, seconds):
    from sdc11073 import wsdiscovery
    from sdc11073.consumer import consumerimpl
    from sdc11073.consumer.consumerimpl import SdcConsumer

    # Skip the hosted services' own GetMetadata (each returns its WSDL, ~100 KB): the device's
    # GetMetadata (ThisModel/ThisDevice) and GetMdib are what the fixture is about.
    consumerimpl.HostedServiceDescription.read_metadata = lambda self, soap_client: None
    from sdc11073.definitions_sdc import SdcV1Definitions

    wsd = wsdiscovery.WSDiscovery(ip)
    wsd.start()
    try:
        services = []
        end = time.monotonic() + seconds
        while not services and time.monotonic() < end:
            services = wsd.search_services(types=SdcV1Definitions.MedicalDeviceTypesFilter, timeout=2,
                                           repeat_probe_interval=1)
        if not services:
            print("no provider found", flush=True)
            return 1
        svc = services[0]
        print("found", svc.epr, svc.x_addrs, flush=True)
        client = SdcConsumer.from_wsd_service(svc, ssl_context_container=None)
        client.set_used_compression()
        # GetMetadata (ThisModel/ThisDevice), hosted services, then subscriptions.
        client.start_all(not_subscribed_actions=None)
        dev = client.host_description.this_device
        model = client.host_description.this_model
        print("metadata", model.Manufacturer[0].text, model.ModelName[0].text,
              dev.SerialNumber, dev.FirmwareVersion, flush=True)
        mdib = client.client("Get").get_mdib()
        print("mdib", len(mdib.p_msg.raw_data or b""), flush=True)
        client.stop_all(unsubscribe=True)
    finally:
        wsd.stop()
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["provider", "consumer"])
    p.add_argument("--ip", required=True)
    p.add_argument("--seconds", type=float, default=10)
    a = p.parse_args()
    return provider(a.ip, a.seconds) if a.mode == "provider" else consumer(a.ip, a.seconds)


if __name__ == "__main__":
    sys.exit(main())
