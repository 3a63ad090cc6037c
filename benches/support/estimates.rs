//! Reads criterion's saved estimates, so a benchmark can print ratios against its floor.

/// The mean time in nanoseconds of the benchmark saved under `target/criterion/<path>`, from
/// its latest run.
pub fn mean_ns(path: &str) -> Option<f64> {
    let json =
        std::fs::read_to_string(format!("target/criterion/{path}/new/estimates.json")).ok()?;
    // {"mean":{"confidence_interval":{...},"point_estimate":N,...
    let after_mean = &json[json.find("\"mean\"")?..];
    let after_point = &after_mean[after_mean.find("\"point_estimate\":")? + 17..];
    after_point[..after_point.find([',', '}'])?]
        .trim()
        .parse()
        .ok()
}
