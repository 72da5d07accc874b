//! Progress bars and notes on stderr for the library's training jobs
//! ([`vocmine::training::Progress`]).

use super::bar;
use indicatif::ProgressBar;
use std::cell::RefCell;
use vocmine::training::Progress;

/// Draws each step of a job as a bar and prints its notes on stderr.
#[derive(Default)]
pub(crate) struct Bars {
    current: RefCell<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, what: &str, total: usize) {
        *self.current.borrow_mut() = Some(bar(total, what));
    }
    fn set(&self, done: usize) {
        if let Some(pb) = self.current.borrow().as_ref() {
            pb.set_position(done as u64);
        }
    }
    fn finish(&self) {
        if let Some(pb) = self.current.borrow_mut().take() {
            pb.finish_and_clear();
        }
    }
    fn note(&self, message: &str) {
        match self.current.borrow().as_ref() {
            Some(pb) => pb.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }
}
