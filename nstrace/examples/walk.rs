fn main() {
    let mut t = nstrace::loader::Tracer::load(&Default::default()).unwrap();
    let mut w = t.walker().unwrap();
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
