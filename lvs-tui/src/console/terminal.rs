//! The terminal: raw mode, the alternate screen, the hidden cursor and (only when asked)
//! mouse capture.
//!
//! Invariant: once [`TerminalGuard::enter`] succeeded, the terminal is given back exactly
//! once, whichever way the console ends: the guard's `Drop` on return or error, and the
//! panic hook (which runs before unwinding reaches the guard) on a panic, so the panic
//! message is printed on a normal screen. Restoring twice is harmless; the hook is removed
//! when the guard goes.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Owns the terminal's special modes while the console runs.
pub struct TerminalGuard {
    mouse: bool,
    restored: Arc<AtomicBool>,
    previous_hook: Option<Arc<PanicHook>>,
}

impl std::fmt::Debug for TerminalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalGuard")
            .field("mouse", &self.mouse)
            .finish_non_exhaustive()
    }
}

fn restore(mouse: bool) {
    let mut out = io::stdout();
    if mouse {
        let _ = execute!(out, DisableMouseCapture);
    }
    let _ = execute!(out, LeaveAlternateScreen, cursor::Show);
    let _ = disable_raw_mode();
    let _ = out.flush();
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen; installs the panic hook.
    pub fn enter(
        mouse: bool,
    ) -> io::Result<(TerminalGuard, Terminal<CrosstermBackend<io::Stdout>>)> {
        let restored = Arc::new(AtomicBool::new(false));
        let previous: Arc<PanicHook> = Arc::new(std::panic::take_hook());
        {
            let previous = Arc::clone(&previous);
            let restored = Arc::clone(&restored);
            std::panic::set_hook(Box::new(move |info| {
                if !restored.swap(true, Ordering::SeqCst) {
                    restore(mouse);
                }
                previous(info);
            }));
        }
        let guard = TerminalGuard {
            mouse,
            restored,
            previous_hook: Some(previous),
        };
        enable_raw_mode()?;
        let mut out = io::stdout();
        execute!(out, EnterAlternateScreen, cursor::Hide)?;
        if mouse {
            execute!(out, EnableMouseCapture)?;
        }
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        Ok((guard, terminal))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if !self.restored.swap(true, Ordering::SeqCst) {
            restore(self.mouse);
        }
        if let Some(previous) = self.previous_hook.take()
            && !std::thread::panicking()
        {
            // Put the embedding program's hook back (not while unwinding: `take_hook`
            // panics on a panicking thread; the process is going down then anyway).
            let _ = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| previous(info)));
        }
    }
}
