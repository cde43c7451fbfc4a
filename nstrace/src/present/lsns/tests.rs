use super::*;
use crate::model::TaskHold;
use crate::time::UnixTime;
use nstrace_common::ns::NsType;

#[test]
fn output_lists_parse_as_lsns_reads_them() {
    assert_eq!(
        parse_output("NS,type,Nprocs").unwrap(),
        OutputSpec::Exactly(vec![LsCol::Ns, LsCol::Type, LsCol::Nprocs])
    );
    assert_eq!(parse_output("+creator,pinned_by").unwrap(), OutputSpec::Extend(vec![LsCol::Creator, LsCol::PinnedBy]));
    let err = parse_output("NS,BOGUS").unwrap_err();
    assert!(err.contains("\"BOGUS\"") && err.contains("NETNSID") && err.contains("PINNED-BY"), "{err}");
    assert!(parse_output("+").is_err());
    // Every column's name reads back as itself.
    for c in LsCol::ALL {
        assert_eq!(LsCol::from_name(&c.json_key()), Some(c));
    }
}

#[test]
fn raw_cells_never_split_a_line_into_more_fields() {
    assert_eq!(raw_escape("ip netns add x"), "ip\\x20netns\\x20add\\x20x");
    assert_eq!(raw_escape("a\\b\tc"), "a\\x5cb\\x09c");
    assert_eq!(raw_escape("└─sh"), "\\xe2\\x94\\x94\\xe2\\x94\\x80sh", "as lsns: every non-ASCII byte");
}

fn row_with(holders: Vec<Holder>) -> NsRow {
    NsRow { holders: holders.into(), ..NsRow::new(NsType::Net, 4026532000) }
}

#[test]
fn json_form_is_lsns_document_with_typed_values() {
    let store = NsStore::new(Default::default(), Default::default());
    let facts = LsnsFacts::default();
    let cells = Cells::new(&store, UnixTime::from_secs(0.0), &facts);
    let row = NsRow { owner: Some(4026531837), ..row_with(Vec::new()) };
    let mut out = Vec::new();
    let form = Form { headings: true, json: true, ..Form::default() };
    let cols = [LsCol::Ns, LsCol::Type, LsCol::Nprocs, LsCol::Pid, LsCol::Ons, LsCol::Pns];
    write(&mut out, &[Line::of(&row, &facts)], &cols, &cells, form).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"namespaces": [
            {"ns": 4026532000u64, "type": "net", "nprocs": 0, "pid": null, "ons": 4026531837u64, "pns": 0}
        ]})
    );
    // Raw: one line per row, empty cells kept as empty fields.
    let mut out = Vec::new();
    let form = Form { raw: true, ..Form::default() };
    write(&mut out, &[Line::of(&row, &facts)], &[LsCol::Ns, LsCol::Pid, LsCol::Type], &cells, form).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "4026532000  net\n");
}

#[test]
fn the_process_tree_hangs_each_line_under_its_parent_process() {
    // Lines 0..4: parents as lsns's process tree finds them.
    let parents = [None, Some(0), Some(1), Some(0), None];
    assert_eq!(tree_prefixes(&parents), ["", "├─", "│ └─", "└─", ""]);
    let objects: Vec<serde_json::Map<String, serde_json::Value>> =
        (0..5).map(|i| std::iter::once(("ns".to_string(), serde_json::Value::from(i))).collect()).collect();
    let nested = serde_json::Value::from(nest(objects, &parents));
    assert_eq!(
        nested,
        serde_json::json!([
            {"ns": 0, "children": [{"ns": 1, "children": [{"ns": 2}]}, {"ns": 3}]},
            {"ns": 4}
        ])
    );
}

#[test]
fn only_the_process_columns_depend_on_the_lowest_process() {
    // What /proc said of a member process and of the namespace: every
    // per-process column has a value through it, and none of the others
    // changes without it.
    let me = 4242;
    let comm: crate::model::Comm = "test".into();
    let inode = 4026531840;
    let row = NsRow {
        holders: vec![Holder::Task { pid: me, tid: None, comm, hold: TaskHold::Member }].into(),
        ..NsRow::new(NsType::Net, inode)
    };
    let facts = LsnsFacts {
        lowest: [((NsType::Net, inode), me)].into(),
        nprocs: [((NsType::Net, inode), 1)].into(),
        procs: [(me, ProcFacts { ppid: Some(1), uid: Some(0), command: Some("test".into()) })].into(),
        users: [(0, "root".to_string())].into(),
        owner_uids: [((NsType::Net, inode), 0)].into(),
        netnsids: [(inode, NetnsId::Unassigned)].into(),
        ..LsnsFacts::default()
    };
    let store = NsStore::new(Default::default(), Default::default());
    let cells = Cells::new(&store, UnixTime::from_secs(0.0), &facts);
    assert_eq!(Line::of(&row, &facts).pid, Some(me));
    for col in LsCol::ALL {
        let through = cells.value(col, Line { row: &row, pid: Some(me) });
        let bare = cells.value(col, Line::bare(&row));
        if col.describes_a_process() {
            assert_ne!(through, Value::Null, "{col:?} has a value through the lowest process");
        } else {
            assert_eq!(through, bare, "{col:?} does not depend on a process");
        }
    }
    let text = |col, pid| cells.value(col, Line { row: &row, pid });
    assert_eq!(
        [LsCol::Nprocs, LsCol::Ppid, LsCol::User, LsCol::Netnsid].map(|c| text(c, Some(me))),
        [Value::Num(1), Value::Num(1), Value::Text("root".into()), Value::Text("unassigned".into())]
    );
    assert_eq!(text(LsCol::Path, Some(me)), Value::Text("/proc/4242/ns/net".into()));
}

#[test]
fn each_column_needs_only_its_own_facts() {
    assert_eq!(
        Needs::of(&LsCol::LSNS_DEFAULT),
        Needs { own: true, lowest: true, nprocs: true, procs: true, users: true, ..Needs::default() }
    );
    assert_eq!(Needs::of(&[LsCol::Ns, LsCol::Type, LsCol::Age, LsCol::Container]), Needs::default());
    assert_eq!(Needs::of(&[LsCol::Nsfs]), Needs { own: true, ..Needs::default() });
    assert_eq!(Needs::of(&[LsCol::Path]), Needs { lowest: true, ..Needs::default() });
    assert_eq!(Needs::of(&[LsCol::Netnsid]), Needs { own: true, lowest: true, netnsid: true, ..Needs::default() });
    assert_eq!(Needs::of(&[LsCol::OwnerUid]), Needs { own: true, lowest: true, owner_uid: true, ..Needs::default() });
}
