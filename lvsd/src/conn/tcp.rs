//! The IPVS TCP connection states, their transition table and their timeouts (spec b.17).
//!
//! Pure data: [`TcpState::next`] is a table lookup with no side effects. The caller owns the
//! rest of the kernel's `set_tcp_state`:
//! - Direction: [`Direction::Input`] for client→real server packets, [`Direction::Output`]
//!   for real server replies seen by the director. A connection to a non-NAT destination
//!   (DR) starts with the kernel's NOOUTPUT flag: its input packets use
//!   [`Direction::InputOnly`] until an output packet is seen, which clears the flag for good.
//!   NAT connections never carry the flag (kernel `__ip_vs_update_dest` sets it only when
//!   the forwarding method is not masquerading). [`Direction::resolve`] does exactly this.
//! - A packet with none of RST, SYN, FIN, ACK moves the connection to CLOSE: the kernel's
//!   `set_tcp_state` starts from `new_state = CLOSE` and skips the table lookup for such a
//!   segment. (Valid TCP never sends one after the SYN; a null scan does.)
//! - Accounting: a connection counts as *active* exactly while [`TcpState::is_established`].
//! - A new connection starts in [`TcpState::None`]; its first packet is then fed through
//!   `next`, so a SYN takes it to SYN_RECV.
//!
//! The table is the kernel's normal `tcp_states` (net/netfilter/ipvs/ip_vs_proto_tcp.c),
//! re-laid out one line per *current* state instead of one row per flag. The
//! `secure_tcp` table (`tcp_states_dos`) is not implemented.

use std::fmt;
use std::time::Duration;

/// An IPVS TCP connection state. Discriminants are the kernel's `IP_VS_TCP_S_*` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpState {
    /// `NONE`: just created, no packet seen yet.
    None = 0,
    /// `ESTABLISHED`: the only state counted as an active connection.
    Established = 1,
    /// `SYN_SENT`: a SYN seen from the real server side.
    SynSent = 2,
    /// `SYN_RECV`: a client SYN seen.
    SynRecv = 3,
    /// `FIN_WAIT`
    FinWait = 4,
    /// `TIME_WAIT`
    TimeWait = 5,
    /// `CLOSE`
    Close = 6,
    /// `CLOSE_WAIT`
    CloseWait = 7,
    /// `LAST_ACK`
    LastAck = 8,
    /// `LISTEN`: FTP-data style connections waiting for a reply connection.
    Listen = 9,
    /// `SYNACK` (only reached through the secure_tcp table).
    SynAck = 10,
}

impl TcpState {
    /// Every state, in kernel order (index = discriminant).
    pub const ALL: [TcpState; 11] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The name ipvsadm `-c` prints (`ESTABLISHED`, `SYN_RECV`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// Whether the connection counts in the destination's `activeconns`.
    pub const fn is_established(self) -> bool {
        matches!(self, TcpState::Established)
    }

    /// The state after a packet with `flags` travelling in `dir`.
    ///
    /// The flag row is chosen by priority RST > SYN > FIN > ACK; a packet with none of them
    /// goes to CLOSE, as in the kernel.
    pub fn next(self, dir: Direction, flags: TcpFlags) -> TcpState {
        match flags.row() {
            Some(row) => TRANSITIONS[self as usize][dir as usize][row as usize],
            None => TcpState::Close,
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way a packet travels relative to the connection (the kernel's `IP_VS_DIR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → real server, on a connection whose replies have been seen (NAT, or DR once
    /// a reply passed the director).
    Input = 0,
    /// Real server → client through the director (NAT replies).
    Output = 1,
    /// Client → real server while the connection has NOOUTPUT: DR, no reply seen yet.
    InputOnly = 2,
}

impl Direction {
    /// The table column for a packet seen as `self` (`Input` or `Output`) on a connection
    /// whose NOOUTPUT flag is `no_output` (kernel `set_tcp_state`): with the flag, an input
    /// packet uses [`Direction::InputOnly`] and an output packet clears the flag.
    pub fn resolve(self, no_output: &mut bool) -> Direction {
        match (self, *no_output) {
            (Direction::Output, true) => {
                *no_output = false;
                Direction::Output
            }
            (Direction::Input | Direction::InputOnly, true) => Direction::InputOnly,
            (dir, false) => dir,
        }
    }
}

/// The TCP header flags that drive the IPVS state table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags {
    /// SYN
    pub syn: bool,
    /// FIN
    pub fin: bool,
    /// ACK
    pub ack: bool,
    /// RST
    pub rst: bool,
}

impl TcpFlags {
    /// A bare SYN.
    pub const SYN: TcpFlags = TcpFlags {
        syn: true,
        fin: false,
        ack: false,
        rst: false,
    };
    /// SYN+ACK.
    pub const SYN_ACK: TcpFlags = TcpFlags {
        syn: true,
        fin: false,
        ack: true,
        rst: false,
    };
    /// A bare ACK (also: data segments).
    pub const ACK: TcpFlags = TcpFlags {
        syn: false,
        fin: false,
        ack: true,
        rst: false,
    };
    /// FIN+ACK.
    pub const FIN_ACK: TcpFlags = TcpFlags {
        syn: false,
        fin: true,
        ack: true,
        rst: false,
    };
    /// A bare RST.
    pub const RST: TcpFlags = TcpFlags {
        syn: false,
        fin: false,
        ack: false,
        rst: true,
    };

    /// From byte 13 of the TCP header (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10); the other
    /// bits are ignored.
    pub const fn from_tcp_flags_byte(byte: u8) -> TcpFlags {
        TcpFlags {
            fin: byte & 0x01 != 0,
            syn: byte & 0x02 != 0,
            rst: byte & 0x04 != 0,
            ack: byte & 0x10 != 0,
        }
    }

    /// The kernel's `tcp_state_idx`: RST beats SYN beats FIN beats ACK.
    const fn row(self) -> Option<FlagRow> {
        if self.rst {
            Some(FlagRow::Rst)
        } else if self.syn {
            Some(FlagRow::Syn)
        } else if self.fin {
            Some(FlagRow::Fin)
        } else if self.ack {
            Some(FlagRow::Ack)
        } else {
            None
        }
    }
}

/// Which flag decides a transition; indexes the innermost table level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagRow {
    Syn = 0,
    Fin = 1,
    Ack = 2,
    Rst = 3,
}

/// `TRANSITIONS[current][direction][flag row]`, re-expressed from the normal `tcp_states`
/// table of Linux net/netfilter/ipvs/ip_vs_proto_tcp.c (6.x; since the sloppy-TCP change an
/// ACK in NONE on input leads to ESTABLISHED, older kernels went to CLOSE).
/// One line per current state; each group is `[SYN, FIN, ACK, RST]`.
#[rustfmt::skip]
const TRANSITIONS: [[[TcpState; 4]; 3]; 11] = {
    use TcpState::{
        Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA,
        Listen as LI, SynRecv as SR, SynSent as SS, TimeWait as TW,
    };
    [
        //        Input                Output               InputOnly
        //        SYN FIN ACK RST      SYN FIN ACK RST      SYN FIN ACK RST
        /* NO */ [[SR, CL, ES, CL],    [SS, TW, ES, CL],    [SR, CL, ES, CL]],
        /* ES */ [[ES, CW, ES, CL],    [ES, FW, ES, CL],    [ES, FW, ES, CL]],
        /* SS */ [[ES, SS, SS, CL],    [SS, SS, SS, SS],    [ES, SS, SS, CL]],
        /* SR */ [[SR, TW, ES, SR],    [SR, TW, ES, CL],    [SR, TW, ES, SR]],
        /* FW */ [[SR, TW, FW, CL],    [SS, FW, FW, CL],    [SR, FW, FW, CL]],
        /* TW */ [[SR, TW, TW, CL],    [SS, TW, TW, TW],    [SR, TW, TW, CL]],
        /* CL */ [[SR, CL, CL, CL],    [SS, CL, CL, CL],    [SR, CL, CL, CL]],
        /* CW */ [[SR, CW, CW, CL],    [SS, TW, CW, CL],    [SR, CW, CW, CL]],
        /* LA */ [[SR, LA, CL, LA],    [SS, LA, LA, CL],    [SR, LA, CL, LA]],
        /* LI */ [[SR, LI, LI, LI],    [LI, LI, ES, CL],    [SR, LI, LI, LI]],
        /* SA */ [[SR, TW, ES, SR],    [SR, TW, ES, CL],    [SR, TW, ES, CL]],
    ]
};

/// Connection timeouts: one per TCP state, plus UDP. `Default` is the IPVS defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timeouts {
    tcp: [Duration; 11],
    udp: Duration,
}

/// The three timeouts ipvsadm shows and sets (`--set tcp tcpfin udp`), in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IpvsadmTimeouts {
    /// TCP ESTABLISHED.
    pub tcp: u32,
    /// TCP FIN_WAIT.
    pub tcpfin: u32,
    /// UDP.
    pub udp: u32,
}

impl Default for Timeouts {
    /// The kernel's `tcp_timeouts` and `udp_timeouts` (spec b.17).
    fn default() -> Self {
        const fn s(secs: u64) -> Duration {
            Duration::from_secs(secs)
        }
        Timeouts {
            tcp: [
                s(2),   // NONE
                s(900), // ESTABLISHED
                s(120), // SYN_SENT
                s(60),  // SYN_RECV
                s(120), // FIN_WAIT
                s(120), // TIME_WAIT
                s(10),  // CLOSE
                s(60),  // CLOSE_WAIT
                s(30),  // LAST_ACK
                s(120), // LISTEN
                s(120), // SYNACK
            ],
            udp: s(300),
        }
    }
}

impl Timeouts {
    /// How long a TCP connection may idle in `state`.
    pub fn tcp(&self, state: TcpState) -> Duration {
        self.tcp[state as usize]
    }

    /// How long a UDP connection may idle.
    pub fn udp(&self) -> Duration {
        self.udp
    }

    /// Sets the timeout of one TCP state.
    pub fn set_tcp(&mut self, state: TcpState, timeout: Duration) {
        self.tcp[state as usize] = timeout;
    }

    /// Sets the UDP timeout.
    pub fn set_udp(&mut self, timeout: Duration) {
        self.udp = timeout;
    }

    /// `ipvsadm --set tcp tcpfin udp`: ESTABLISHED, FIN_WAIT and UDP; 0 leaves a value as is.
    pub fn set_ipvsadm(&mut self, set: IpvsadmTimeouts) {
        if set.tcp != 0 {
            self.set_tcp(TcpState::Established, Duration::from_secs(set.tcp.into()));
        }
        if set.tcpfin != 0 {
            self.set_tcp(TcpState::FinWait, Duration::from_secs(set.tcpfin.into()));
        }
        if set.udp != 0 {
            self.set_udp(Duration::from_secs(set.udp.into()));
        }
    }

    /// What `ipvsadm -L --timeout` prints, in whole seconds (saturating).
    pub fn ipvsadm(&self) -> IpvsadmTimeouts {
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        IpvsadmTimeouts {
            tcp: secs(self.tcp(TcpState::Established)),
            tcpfin: secs(self.tcp(TcpState::FinWait)),
            udp: secs(self.udp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Direction::{Input, InputOnly, Output};
    use super::TcpState::*;
    use super::*;

    const FIN: TcpFlags = TcpFlags {
        syn: false,
        fin: true,
        ack: false,
        rst: false,
    };
    const RST_ACK: TcpFlags = TcpFlags {
        syn: false,
        fin: false,
        ack: true,
        rst: true,
    };

    /// Feeds packets through the table, checking the state after each one.
    fn walk(steps: &[(Direction, TcpFlags, TcpState)]) {
        let mut state = TcpState::None;
        for (n, &(dir, flags, want)) in steps.iter().enumerate() {
            let next = state.next(dir, flags);
            assert_eq!(next, want, "step {n}: {state} + {dir:?} {flags:?}");
            state = next;
        }
    }

    #[test]
    fn nat_handshake_data_and_client_close() {
        // NAT: the director sees both directions.
        walk(&[
            (Input, TcpFlags::SYN, SynRecv),       // client SYN
            (Output, TcpFlags::SYN_ACK, SynRecv),  // server SYN+ACK: OUTPUT syn row, SR stays
            (Input, TcpFlags::ACK, Established),   // client ACK completes the handshake
            (Input, TcpFlags::ACK, Established),   // data
            (Output, TcpFlags::ACK, Established),  // reply data
            (Input, TcpFlags::FIN_ACK, CloseWait), // client closes
            (Output, TcpFlags::ACK, CloseWait),    // server ACKs the FIN
            (Output, TcpFlags::FIN_ACK, TimeWait), // server closes
            (Input, TcpFlags::ACK, TimeWait),      // client's last ACK
        ]);
    }

    #[test]
    fn nat_server_closes_first() {
        walk(&[
            (Input, TcpFlags::SYN, SynRecv),
            (Output, TcpFlags::SYN_ACK, SynRecv),
            (Input, TcpFlags::ACK, Established),
            (Output, TcpFlags::FIN_ACK, FinWait), // server FIN
            (Input, TcpFlags::ACK, FinWait),
            (Input, TcpFlags::FIN_ACK, TimeWait), // client FIN
            (Output, TcpFlags::ACK, TimeWait),
        ]);
    }

    #[test]
    fn dr_input_only_lifecycle() {
        // DR: replies bypass the director, every packet is INPUT_ONLY.
        walk(&[
            (InputOnly, TcpFlags::SYN, SynRecv),
            (InputOnly, TcpFlags::ACK, Established),
            (InputOnly, TcpFlags::ACK, Established), // data
            (InputOnly, TcpFlags::FIN_ACK, FinWait), // client FIN: FIN_WAIT, not CLOSE_WAIT
            (InputOnly, TcpFlags::ACK, FinWait),     // last ACK after the server's FIN
        ]);
    }

    #[test]
    fn rst_handling() {
        // RST beats every other flag: RST+ACK in ESTABLISHED closes, from either side.
        assert_eq!(Established.next(Input, RST_ACK), Close);
        assert_eq!(Established.next(Output, TcpFlags::RST), Close);
        assert_eq!(Established.next(InputOnly, TcpFlags::RST), Close);
        // A client RST during the handshake is ignored (SYN_RECV stays), a server RST
        // (port closed) ends it.
        assert_eq!(SynRecv.next(Input, TcpFlags::RST), SynRecv);
        assert_eq!(SynRecv.next(Output, TcpFlags::RST), Close);
        // RST+SYN is handled as RST.
        let rst_syn = TcpFlags {
            syn: true,
            rst: true,
            ..TcpFlags::default()
        };
        assert_eq!(TcpState::None.next(Input, rst_syn), Close);
        // Full walk: handshake, then the server resets.
        walk(&[
            (Input, TcpFlags::SYN, SynRecv),
            (Output, TcpFlags::SYN_ACK, SynRecv),
            (Input, TcpFlags::ACK, Established),
            (Output, RST_ACK, Close),
            (Input, TcpFlags::ACK, Close),
        ]);
    }

    #[test]
    fn no_table_flag_means_close() {
        // Kernel set_tcp_state: new_state starts as CLOSE and tcp_state_idx() < 0 skips
        // the lookup, so a segment without RST/SYN/FIN/ACK closes the entry.
        for s in TcpState::ALL {
            for dir in [Input, Output, InputOnly] {
                assert_eq!(s.next(dir, TcpFlags::default()), Close);
                // PSH/URG/ECE/CWR alone are not table flags either.
                assert_eq!(s.next(dir, TcpFlags::from_tcp_flags_byte(0xe8)), Close);
            }
        }
    }

    #[test]
    fn flag_priority_rst_syn_fin_ack() {
        let all = TcpFlags {
            syn: true,
            fin: true,
            ack: true,
            rst: true,
        };
        assert_eq!(all.row(), Some(FlagRow::Rst));
        assert_eq!(TcpFlags { rst: false, ..all }.row(), Some(FlagRow::Syn));
        assert_eq!(TcpFlags::FIN_ACK.row(), Some(FlagRow::Fin));
        assert_eq!(TcpFlags::ACK.row(), Some(FlagRow::Ack));
        // SYN+FIN is treated as SYN.
        assert_eq!(
            Established.next(
                Input,
                TcpFlags {
                    syn: true,
                    fin: true,
                    ..TcpFlags::default()
                }
            ),
            Established
        );
    }

    /// Transitions checked one by one against the kernel's `tcp_states`
    /// (net/netfilter/ipvs/ip_vs_proto_tcp.c); the comment names the kernel row and column.
    #[test]
    fn kernel_table_spot_checks() {
        let cases = [
            // INPUT rows
            (TcpState::None, Input, TcpFlags::SYN, SynRecv), // INPUT/syn, sNO → sSR
            (SynSent, Input, TcpFlags::SYN, Established),    // INPUT/syn, sSS → sES
            (Established, Input, FIN, CloseWait),            // INPUT/fin, sES → sCW
            (TcpState::None, Input, TcpFlags::ACK, Established), // INPUT/ack, sNO → sES (sloppy TCP)
            (LastAck, Input, TcpFlags::ACK, Close),              // INPUT/ack, sLA → sCL
            (SynAck, Input, TcpFlags::RST, SynRecv),             // INPUT/rst, sSA → sSR
            // OUTPUT rows
            (TcpState::None, Output, TcpFlags::SYN, SynSent), // OUTPUT/syn, sNO → sSS
            (Listen, Output, TcpFlags::ACK, Established),     // OUTPUT/ack, sLI → sES
            (CloseWait, Output, FIN, TimeWait),               // OUTPUT/fin, sCW → sTW
            (TimeWait, Output, TcpFlags::RST, TimeWait),      // OUTPUT/rst, sTW → sTW
            (SynSent, Output, TcpFlags::RST, SynSent),        // OUTPUT/rst, sSS → sSS
            (LastAck, Output, TcpFlags::ACK, LastAck),        // OUTPUT/ack, sLA → sLA
            // INPUT-ONLY rows
            (Established, InputOnly, FIN, FinWait), // INPUT-ONLY/fin, sES → sFW
            (SynAck, InputOnly, TcpFlags::RST, Close), // INPUT-ONLY/rst, sSA → sCL
            (FinWait, InputOnly, TcpFlags::SYN, SynRecv), // INPUT-ONLY/syn, sFW → sSR
            (LastAck, InputOnly, TcpFlags::RST, LastAck), // INPUT-ONLY/rst, sLA → sLA
        ];
        for (from, dir, flags, to) in cases {
            assert_eq!(from.next(dir, flags), to, "{from} {dir:?} {flags:?}");
        }
    }

    #[test]
    fn no_output_flag_selects_input_only_until_a_reply() {
        // DR connection: NOOUTPUT set, so input packets use INPUT_ONLY.
        let mut no_output = true;
        assert_eq!(Input.resolve(&mut no_output), InputOnly);
        assert!(no_output);
        // A reply passes the director: the flag clears, later input uses INPUT.
        assert_eq!(Output.resolve(&mut no_output), Output);
        assert!(!no_output);
        assert_eq!(Input.resolve(&mut no_output), Input);
        // NAT: never flagged.
        let mut nat = false;
        assert_eq!(Input.resolve(&mut nat), Input);
        assert_eq!(Output.resolve(&mut nat), Output);
    }

    #[test]
    fn reuse_after_close_by_new_syn() {
        // A new SYN on a TIME_WAIT/CLOSE entry restarts the handshake state.
        assert_eq!(TimeWait.next(Input, TcpFlags::SYN), SynRecv);
        assert_eq!(Close.next(InputOnly, TcpFlags::SYN), SynRecv);
    }

    #[test]
    fn only_established_is_active() {
        for s in TcpState::ALL {
            assert_eq!(s.is_established(), s == Established, "{s}");
        }
    }

    #[test]
    fn names_match_ipvsadm_and_discriminants_match_kernel() {
        let names: Vec<_> = TcpState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "NONE",
                "ESTABLISHED",
                "SYN_SENT",
                "SYN_RECV",
                "FIN_WAIT",
                "TIME_WAIT",
                "CLOSE",
                "CLOSE_WAIT",
                "LAST_ACK",
                "LISTEN",
                "SYNACK"
            ]
        );
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        assert_eq!(SynRecv.to_string(), "SYN_RECV");
    }

    #[test]
    fn flags_from_header_byte() {
        assert_eq!(TcpFlags::from_tcp_flags_byte(0x02), TcpFlags::SYN);
        assert_eq!(TcpFlags::from_tcp_flags_byte(0x12), TcpFlags::SYN_ACK);
        assert_eq!(TcpFlags::from_tcp_flags_byte(0x18), TcpFlags::ACK); // PSH+ACK
        assert_eq!(TcpFlags::from_tcp_flags_byte(0x11), TcpFlags::FIN_ACK);
        assert_eq!(TcpFlags::from_tcp_flags_byte(0x14), RST_ACK);
    }

    #[test]
    fn default_timeouts_are_ipvs_defaults() {
        let t = Timeouts::default();
        let secs: Vec<u64> = TcpState::ALL.iter().map(|&s| t.tcp(s).as_secs()).collect();
        assert_eq!(secs, [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120]);
        assert_eq!(t.udp(), Duration::from_secs(300));
        assert_eq!(
            t.ipvsadm(),
            IpvsadmTimeouts {
                tcp: 900,
                tcpfin: 120,
                udp: 300
            }
        );
    }

    #[test]
    fn ipvsadm_set_zero_means_unchanged() {
        let mut t = Timeouts::default();
        t.set_ipvsadm(IpvsadmTimeouts {
            tcp: 3600,
            tcpfin: 0,
            udp: 30,
        });
        assert_eq!(
            t.ipvsadm(),
            IpvsadmTimeouts {
                tcp: 3600,
                tcpfin: 120,
                udp: 30
            }
        );
        assert_eq!(t.tcp(Established), Duration::from_secs(3600));
        // Other states are untouched.
        assert_eq!(t.tcp(TimeWait), Duration::from_secs(120));
        t.set_ipvsadm(IpvsadmTimeouts {
            tcp: 0,
            tcpfin: 5,
            udp: 0,
        });
        assert_eq!(
            t.ipvsadm(),
            IpvsadmTimeouts {
                tcp: 3600,
                tcpfin: 5,
                udp: 30
            }
        );
    }
}
