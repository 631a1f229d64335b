//! The progress bar of `cnf train`: an observer of the library's training loop.
use std::ops::ControlFlow;

use cnf_train::observers::EventObserver;
use cnf_train::trainer::{IterEvent, ValEvent};
use indicatif::{ProgressBar, ProgressStyle};

/// An indicatif bar: iteration, loss, NFE, it/s, ETA.
pub struct Progress {
    bar: ProgressBar,
    best: f64,
}

impl Progress {
    /// A bar from `start` to `total` iterations (hidden when output is not a terminal).
    pub fn new(start: usize, total: usize) -> Self {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(start as u64);
        Self {
            bar,
            best: f64::INFINITY,
        }
    }
}

impl EventObserver for Progress {
    fn on_iter(&mut self, ev: &IterEvent) {
        self.bar.set_position(ev.iter as u64 + 1);
        self.bar.set_message(format!(
            "loss {:.4} nfe {}/{} best val {:.4}",
            ev.loss, ev.nfe_fwd, ev.nfe_bwd, self.best
        ));
    }
    fn on_validation(&mut self, ev: &ValEvent) -> ControlFlow<()> {
        if ev.untrained {
            // The bar starts at the first iteration; the starting model's figure is in the
            // metrics file.
            return ControlFlow::Continue(());
        }
        self.best = self.best.min(ev.val_nll);
        let line = format!(
            "iter {:>5}  train loss {:.4}  val NLL {:.4}  nfe fwd/bwd {}/{}  {:.1} s",
            ev.iter, ev.train_nll, ev.val_nll, ev.nfe_fwd, ev.nfe_bwd, ev.seconds
        );
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
        ControlFlow::Continue(())
    }
    fn on_finish(&mut self) {
        self.bar.finish_and_clear();
    }
}
