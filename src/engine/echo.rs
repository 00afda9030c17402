//! What the echo matcher needs beyond the shared state machine: identifiers that tell this
//! run's echoes apart from other pingers' and from each other. The attempt is the sequence
//! number.

/// One run's echo identifiers.
#[derive(Debug)]
pub struct Idents {
    base: u16,
}

impl Idents {
    pub fn new() -> Self {
        Idents {
            base: rand::random(),
        }
    }

    pub fn ident(&self, slot: usize) -> u16 {
        self.base.wrapping_add(slot as u16)
    }
}
