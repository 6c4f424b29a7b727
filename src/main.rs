//! The `carve` command-line driver.

fn main() {
    println!("carve: under construction");
}
