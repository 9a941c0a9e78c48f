//! The ID-pattern grammar: `[2,9,17,5]`, `[2,*,17,*]`, `(2, 9, 17, 5)`. One parser for the whole project.
