//! lvs-tui: the operator console for lvsd and its scripting CLI.
//!
//! The console itself needs the control API (issue #4) and arrives with issue #5. What lives
//! here already is the part both will print with: ipvsadm's number formatting, so that
//! `--stats` and `--rate` columns read exactly as ipvsadm prints them.

/// Formats a counter the way ipvsadm does without `--exact`: plain below 100,000, then with a
/// `K`, `M` or `G` suffix (integer division by 1000), so a column never grows past 8 characters.
pub fn ipvsadm_number(n: u64) -> String {
    const UNITS: [&str; 4] = ["", "K", "M", "G"];
    let mut value = n;
    let mut unit = 0;
    while value >= 100_000 && unit + 1 < UNITS.len() {
        value /= 1000;
        unit += 1;
    }
    format!("{value}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ipvsadm_columns() {
        // From ipvsadm -Ln --stats: 2110M in-bytes, 181747K, and plain small numbers.
        assert_eq!(ipvsadm_number(0), "0");
        assert_eq!(ipvsadm_number(99_999), "99999");
        assert_eq!(ipvsadm_number(181_747_123), "181747K");
        assert_eq!(ipvsadm_number(2_110_123_456), "2110M");
    }
}
