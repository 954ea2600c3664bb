//! The templates are files, read into the binary by `include_dir!`: a
//! change to one of them, or to the WIT they carry, must rebuild the crate.

fn main() {
    println!("cargo::rerun-if-changed=files");
    println!("cargo::rerun-if-changed=../../wit/service");
    println!("cargo::rerun-if-changed=../../wit/service-p3");
}
