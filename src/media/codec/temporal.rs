//! AV1 temporal layers (`protocols/group-media-v1.md`, "Temporal layers"): which layer each
//! picture of a stream goes to, and what it may reference.
//!
//! Two layers (L1T2) at most: the **base** layer (0) takes every other picture, each predicted
//! from the base picture before it only; the **enhancement** layer (1) takes the pictures between,
//! each predicted from the base picture before it, and **no picture references an enhancement
//! picture**. So dropping every enhancement picture leaves a stream that decodes, at half the
//! frame rate. A keyframe is always a base picture and starts the pattern again (the picture after
//! it is an enhancement one).
//!
//! One layer: every picture is a base picture (rav1e, which has no temporal-layer control, and a
//! 1:1 call's encoder).

/// The most temporal layers an encoder is asked for.
pub const MAX_TEMPORAL_LAYERS: u8 = 2;

/// The layer pattern of one encoder's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemporalPattern {
    layers: u8,
    /// The last picture went to the base layer.
    after_base: bool,
}

impl TemporalPattern {
    /// A pattern of `layers` temporal layers (clamped to 1..=[`MAX_TEMPORAL_LAYERS`]).
    pub fn new(layers: u8) -> Self {
        TemporalPattern { layers: layers.clamp(1, MAX_TEMPORAL_LAYERS), after_base: false }
    }

    /// How many layers.
    pub fn layers(&self) -> u8 {
        self.layers
    }

    /// The layer of the next picture (a keyframe: the base layer, and the pattern starts again).
    pub fn next(&mut self, keyframe: bool) -> u8 {
        let layer = if self.layers == 1 || keyframe || !self.after_base { 0 } else { 1 };
        self.after_base = layer == 0;
        layer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_layers_alternate_and_a_keyframe_starts_again_on_the_base() {
        let mut p = TemporalPattern::new(2);
        let layers: Vec<u8> = [true, false, false, false, false, true, false, true, true, false]
            .into_iter()
            .map(|key| p.next(key))
            .collect();
        assert_eq!(layers, [0, 1, 0, 1, 0, 0, 1, 0, 0, 1]);
        let mut one = TemporalPattern::new(1);
        assert!((0..5).all(|_| one.next(false) == 0));
        assert_eq!(TemporalPattern::new(9).layers(), MAX_TEMPORAL_LAYERS);
    }
}
