//! built-in security modules
