//! Attacks shared by the hostile guests (and the `cli` commands that
//! misbehave on purpose): the ones that need no host at all.

use std::hint::black_box;

/// Spins forever without calling the host.
pub fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Allocates (and touches) memory until allocation fails.
pub fn hoard() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        // Touch every page so the memory is really used.
        for page in chunk.chunks_mut(4096) {
            page[0] = 1;
        }
        hoard.push(black_box(chunk));
    }
}

/// Never returns in practice: the base case is hidden from the optimiser
/// behind `black_box`, so the recursion is real.
pub fn recurse(depth: u64) -> u64 {
    if black_box(depth == u64::MAX) {
        return depth;
    }
    black_box(recurse(black_box(depth + 1))) + 1
}
