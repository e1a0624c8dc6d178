//! RFC 8995 §2.3.1: the serial number comes from the IDevID's subject serialNumber, and a
//! registrar SHOULD be configurable per manufacturer to find it elsewhere
//! (`serial-number-from` in `[[manufacturer]]`).

mod support;

use brski_common::brski::paths;
use brski_common::envelope::Format;
use brski_common::pki::profile;
use brski_common::telemetry::StatusTelemetry;
use std::sync::Arc;
use support::*;
use tempfile::TempDir;

/// An IDevID whose subject serialNumber is `SUBJ-0001` and whose HardwareModuleName carries
/// `HW-0001`.
fn two_serials(vendor: &Vendor, masa_url: &str) -> Party {
    let hw_type = const_oid::ObjectIdentifier::new_unwrap("2.23.133.1.2");
    issued(
        &profile::idevid("SUBJ-0001", Some(masa_url), Some((hw_type, b"HW-0001"))).expect("params"),
        &vendor.ca,
    )
}

async fn registrar(serial_from: Option<&str>) -> (TempDir, Arc<Vendor>, TestMasa, RegistrarProc) {
    let tmp = TempDir::new().expect("tempdir");
    let vendor = Arc::new(Vendor::new("Serial Vendor"));
    let masa = start_masa(vendor.clone(), MasaMode::Issue).await;
    let ca = vendor.write_ca(tmp.path());
    let dir = tmp.path().join("registrar");
    let addr = init_registrar(&dir, &ca, &[]).await;
    if let Some(source) = serial_from {
        edit_config(&dir, |t| {
            t.replacen(
                "# serial-number-from = \"subject-serial-number\"",
                &format!("serial-number-from = \"{source}\""),
                1,
            )
        });
    }
    let reg = RegistrarProc::start(&dir, addr).await;
    (tmp, vendor, masa, reg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_2_3_1_serial_is_read_where_the_manufacturer_puts_it() {
    let (_tmp, vendor, masa, reg) = registrar(Some("hardware-module-name")).await;
    let p = Pledge::new("HW-0001", two_serials(&vendor, &masa.url()));
    let cert = p.registrar_cert(&reg).await;
    let a = p.request_voucher(&reg, &p.pvr(Format::Cms, &cert)).await;
    // The registrar took HW-0001 from the HardwareModuleName, accepted the request naming it
    // and asked the MASA for HW-0001 (this test MASA reads subject serialNumbers, so it
    // refuses, and its 403 is relayed with its reason).
    assert_eq!(masa.calls(), 1, "{}", a.text());
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(
        a.text()
            .contains(r#"serial-number "HW-0001" differs from the pledge IDevID's "SUBJ-0001""#),
        "{}",
        a.text()
    );
    // The pledge is recorded, and its telemetry attributed, under HW-0001.
    let row = reg
        .pledge("HW-0001")
        .await
        .expect("pledge recorded by HW serial");
    assert_eq!(row["serial"], "HW-0001");
    assert!(reg.pledge("SUBJ-0001").await.is_none());
    let a = p
        .post(
            &reg,
            paths::VOUCHER_STATUS,
            "application/json",
            StatusTelemetry::success().to_json().expect("json"),
        )
        .await;
    assert_eq!(
        a.status,
        404,
        "no voucher was relayed to HW-0001: {}",
        a.text()
    );
    assert!(a.text().contains("HW-0001"), "{}", a.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_2_3_1_by_default_the_subject_serial_number_is_the_serial() {
    let (_tmp, vendor, masa, reg) = registrar(None).await;
    // The request names the hardware serial, the registrar reads the subject's: refused.
    let p = Pledge::new("HW-0001", two_serials(&vendor, &masa.url()));
    let cert = p.registrar_cert(&reg).await;
    let a = p.request_voucher(&reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().contains("SUBJ-0001"), "{}", a.text());
    assert_eq!(masa.calls(), 0);
    // Naming the subject serial works.
    Pledge::new("SUBJ-0001", two_serials(&vendor, &masa.url()))
        .obtain_voucher(&reg, &vendor)
        .await;
}
