//! Catalog and cluster files: the shipped examples load, and bad input fails with the exact
//! `file:line:col: message` a user sees.

use std::path::PathBuf;

use agentc_placement::{Cluster, HardwareCatalog, PricingMode};

fn catalog() -> HardwareCatalog {
    HardwareCatalog::builtin().expect("the builtin catalog loads")
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/clusters")
}

fn cluster_error(text: &str) -> String {
    match Cluster::from_yaml_str(text, "c.yaml", &catalog()) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn catalog_error(text: &str) -> String {
    match HardwareCatalog::from_yaml_str(text, "hw.yaml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn example_clusters_load() {
    let catalog = catalog();
    for (file, devices) in [
        ("local.yaml", 1),
        ("cpu-only.yaml", 4),
        ("one-gpu-type.yaml", 10),
        ("mixed.yaml", 9),
    ] {
        let cluster = Cluster::from_path(&examples().join(file), &catalog)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(cluster.devices().len(), devices, "{file}");
    }
}

#[test]
fn catalog_loads_from_a_path() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("catalog/hardware.yaml");
    let from_path = HardwareCatalog::from_path(&path).expect("loads");
    assert_eq!(from_path.devices().len(), catalog().devices().len());
}

#[test]
fn owned_pricing_adds_power_to_depreciation() {
    let text = "name: t\npricing: { mode: owned, usd_per_kwh: 0.1, pue: 1.5 }\nnodes:\n  - name: n\n    devices:\n      - { type: h100-sxm, count: 1 }\n";
    let cluster = Cluster::from_yaml_str(text, "c.yaml", &catalog()).expect("loads");
    assert_eq!(
        cluster.pricing,
        PricingMode::Owned {
            usd_per_kwh: 0.1,
            pue: 1.5
        }
    );
    // $30,000 over 5 years + 0.7 kW x 1.5 x $0.1/kWh, per second.
    let per_hour = 30000.0 / (5.0 * 8760.0) + 0.7 * 1.5 * 0.1;
    let got = cluster.devices()[0].usd_per_second * 3600.0;
    assert!((got - per_hour).abs() < 1e-12, "{got} vs {per_hour}");
}

#[test]
fn unknown_device_type_names_the_closest() {
    let text = "name: t\npricing: { mode: on_demand }\nnodes:\n  - name: n\n    devices:\n      - { type: h100-sxn, count: 1 }\n";
    insta::assert_snapshot!(cluster_error(text), @"c.yaml:6:17: unknown device type `h100-sxn` (not in the hardware catalog); did you mean `h100-sxm`?");
}

#[test]
fn zero_count_is_rejected() {
    let text = "name: t\npricing: { mode: on_demand }\nnodes:\n  - name: n\n    devices:\n      - { type: l4, count: 0 }\n";
    insta::assert_snapshot!(cluster_error(text), @"c.yaml:6:28: device count must be at least 1");
}

#[test]
fn unknown_field_is_rejected_with_position() {
    let text = "name: t\npricing: { mode: on_demand }\nnodes:\n  - name: n\n    gpus: 3\n    devices: []\n";
    insta::assert_snapshot!(cluster_error(text), @"c.yaml:5:5: unknown field `gpus`, expected one of name, devices");
}

#[test]
fn disconnected_nodes_are_rejected() {
    let text = "name: t\npricing: { mode: on_demand }\nnodes:\n  - name: a\n    devices:\n      - { type: l4, count: 1 }\n  - name: b\n    devices:\n      - { type: l4, count: 1 }\n";
    insta::assert_snapshot!(cluster_error(text), @"c.yaml:7:11: nodes `a` and `b` are not connected; add a link between them or a `default_link`");
}

#[test]
fn link_to_unknown_node_is_rejected() {
    let text = "name: t\npricing: { mode: on_demand }\nnodes:\n  - name: alpha\n    devices:\n      - { type: l4, count: 1 }\n  - name: beta\n    devices:\n      - { type: l4, count: 1 }\nlinks:\n  - { between: [alpha, betta], bandwidth_gbs: 10, latency_us: 5 }\n";
    insta::assert_snapshot!(cluster_error(text), @"c.yaml:11:16: link names unknown node `betta`; did you mean `beta`?");
}

#[test]
fn owned_pricing_needs_a_capex_figure() {
    let text = "name: t\npricing: { mode: owned, usd_per_kwh: 0.1, pue: 1.2 }\nnodes:\n  - name: n\n    devices:\n      - { type: a10g, count: 1 }\n";
    insta::assert_snapshot!(cluster_error(text), @"c.yaml:6:17: device type `a10g` has no `owned` price in the catalog; use another pricing mode or add one");
}

#[test]
fn bad_pricing_mode_is_rejected() {
    let text = "name: t\npricing: { mode: spot }\nnodes: []\n";
    insta::assert_snapshot!(cluster_error(text), @"c.yaml:2:18: unknown variant `spot`, expected one of on_demand, owned");
}

const GOOD_DEVICE: &str = "version: 1\ndevices:\n  - name: x\n    class: gpu\n    vendor: v\n    model: m\n    source: s\n    peak_tflops: { fp32: 1 }\n    memory_gb: 1\n    memory_bandwidth_gbs: 1\n    tdp_w: 1\n    interconnect: { pcie_gen: 4, pcie_gbs: 64 }\n    op_overhead_us: 1\n    on_demand: { usd_per_hour: 1, date: 2025-01, source: s }\n";

#[test]
fn minimal_catalog_loads() {
    let catalog = HardwareCatalog::from_yaml_str(GOOD_DEVICE, "hw.yaml").expect("loads");
    assert_eq!(catalog.devices().len(), 1);
}

#[test]
fn negative_bandwidth_is_rejected() {
    let text = GOOD_DEVICE.replace("memory_bandwidth_gbs: 1", "memory_bandwidth_gbs: -3");
    insta::assert_snapshot!(catalog_error(&text), @"hw.yaml:10:27: device `x`: memory_bandwidth_gbs must be a positive number, got -3");
}

#[test]
fn bad_price_date_is_rejected() {
    let text = GOOD_DEVICE.replace("date: 2025-01", "date: last year");
    insta::assert_snapshot!(catalog_error(&text), @"hw.yaml:14:41: device `x`: on_demand.date must be a date like 2025-06 or 2025-06-30, got `last year`");
}

#[test]
fn bad_achievable_fraction_is_rejected() {
    let text = GOOD_DEVICE.replace(
        "op_overhead_us: 1\n",
        "op_overhead_us: 1\n    achievable: { compute: 1.5, bandwidth: 0.5 }\n",
    );
    insta::assert_snapshot!(catalog_error(&text), @"hw.yaml:14:28: device `x`: achievable.compute must be in (0, 1], got 1.5");
}

#[test]
fn duplicate_device_type_is_rejected() {
    let second = GOOD_DEVICE.split("devices:\n").nth(1).unwrap_or_default();
    let text = format!("{GOOD_DEVICE}{second}");
    insta::assert_snapshot!(catalog_error(&text), @"hw.yaml:15:11: device type `x` is defined twice");
}

#[test]
fn missing_field_is_rejected() {
    let text = GOOD_DEVICE.replace("    tdp_w: 1\n", "");
    insta::assert_snapshot!(catalog_error(&text), @"hw.yaml:13:5: missing field `tdp_w`");
}

#[test]
fn wrong_version_is_rejected() {
    let text = GOOD_DEVICE.replace("version: 1", "version: 7");
    insta::assert_snapshot!(catalog_error(&text), @"hw.yaml:1:10: catalog version 7 is not supported; this agentc reads version 1");
}

#[test]
fn yaml_syntax_error_has_position() {
    insta::assert_snapshot!(catalog_error("version: 1\ndevices: [\n  - a\n"), @"hw.yaml:3:3: \"-\" is only valid inside a block");
}
