//! Dumps one raw tree walk (`cargo run --example walk`, as root): every
//! record the kernel's namespace lists gave, before any store sees it.

fn main() {
    let mut t = nstrace::kernel::loader::Tracer::load(&Default::default()).unwrap();
    let mut w = nstrace::kernel::walker::Walker::load(&mut t).unwrap();
    let (rows, stats) = w.walk_all().unwrap();
    for r in &rows {
        println!(
            "{:?} id={} inum={} ref={} lvl={} owner={} parent={}",
            nstrace_common::ns::NsType::from_u32(r.ns_type),
            r.id,
            r.inum,
            r.refcount,
            r.level,
            r.owner.inum,
            r.parent.inum
        );
    }
    println!("{} rows {:?}", rows.len(), stats);
}
