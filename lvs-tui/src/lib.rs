//! lvs-tui: the operator console for lvsd and its scripting CLI.
//!
//! - [`ipvsadm`]: ipvsadm's listing formats (`-Ln`, `--stats`, `--rate`, `-Lnc`, ...), byte for
//!   byte, over a plain view model, so both the CLI and the console print with them.
//! - [`cli`]: `lvsctl`, the one-shot scripting CLI over the control API (binary in
//!   `src/bin/lvsctl.rs`).
//! - [`console`]: `lvs-tui`, the full-screen console for one or more directors (binary in
//!   `src/bin/lvs-tui.rs`; [`console::run`] for programs that embed it).

pub mod cli;
pub mod console;
pub mod ipvsadm;

/// Formats a counter the way ipvsadm does without `--exact`: plain below 100 million, then
/// thousands (`K`) below a billion, millions (`M`) below 100 billion, billions (`G`) below
/// 100 trillion, else trillions (`T`) — integer division, so a column stays 8 wide.
pub fn ipvsadm_number(n: u64) -> String {
    match n {
        0..100_000_000 => n.to_string(),
        100_000_000..1_000_000_000 => format!("{}K", n / 1_000),
        1_000_000_000..100_000_000_000 => format!("{}M", n / 1_000_000),
        100_000_000_000..100_000_000_000_000 => format!("{}G", n / 1_000_000_000),
        _ => format!("{}T", n / 1_000_000_000_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ipvsadm_columns() {
        // From ipvsadm -Ln --stats: 2110M in-bytes, 181747K, and plain small numbers.
        assert_eq!(ipvsadm_number(0), "0");
        assert_eq!(ipvsadm_number(19_495_479), "19495479");
        assert_eq!(ipvsadm_number(99_999_999), "99999999");
        assert_eq!(ipvsadm_number(100_000_000), "100000K");
        assert_eq!(ipvsadm_number(181_747_123), "181747K");
        assert_eq!(ipvsadm_number(2_110_123_456), "2110M");
        assert_eq!(ipvsadm_number(123_456_789_012), "123G");
        assert_eq!(ipvsadm_number(u64::MAX), "18446744T");
    }
}
