//! Compression variants as transforms of a network description.
