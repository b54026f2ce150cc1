//! Dense rows held in one list column: a `FixedSizeList<number>`, or a `List<number>` /
//! `LargeList<number>` whose lists all have the row width (how pandas and pyarrow store
//! an embedding or a spectrum frame from a column of arrays). A variable list's width is
//! `--width`, else the length of the file's first row; a row of another length is an
//! error naming it.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, OffsetSizeTrait};
use arrow_schema::{DataType, Schema};

use super::convert::is_feature_type;
use super::{InputOptions, Layout};
use crate::error::{Error, Result};

/// Whether `t` is a variable-length list of numbers.
pub(super) fn is_number_list(t: &DataType) -> bool {
    match t {
        DataType::List(child) | DataType::LargeList(child) => child.data_type().is_numeric(),
        _ => false,
    }
}

/// The variable-length list column that a dense layout reads its rows from, if any: the
/// one column `--columns` names, or with no `--columns` the only list of numbers of a
/// schema without number columns (beside the id).
pub(crate) fn list_column(schema: &Schema, opts: &InputOptions) -> Option<String> {
    if !matches!(opts.layout, Layout::Dense) {
        return None;
    }
    let field = |name: &str| schema.field_with_name(name).ok();
    match &opts.columns {
        Some(cols) => match cols.as_slice() {
            [one] => field(one)
                .filter(|f| is_number_list(f.data_type()))
                .map(|f| f.name().clone()),
            _ => None,
        },
        None => {
            let others: Vec<_> = schema
                .fields()
                .iter()
                .filter(|f| Some(f.name()) != opts.id_column.as_ref())
                .filter(|f| {
                    // The default selection's own rule (a categorical of strings is a
                    // label, not a feature), plus lists.
                    let t = f.data_type();
                    is_feature_type(t)
                        || matches!(t, DataType::FixedSizeList(..))
                        || is_number_list(t)
                })
                .collect();
            match others.as_slice() {
                [one] if is_number_list(one.data_type()) => Some(one.name().clone()),
                _ => None,
            }
        }
    }
}

/// The `n × size` values of list column `a` (`name`, first row `row0`), rows in order:
/// every row present and `size` values long.
pub(super) fn row_values(a: &ArrayRef, size: usize, name: &str, row0: u64) -> Result<ArrayRef> {
    let n = a.len();
    let wrong = |i: usize, len: usize| Error::Column {
        row: row0 + i as u64,
        column: name.to_string(),
        message: format!("a list of {len} values, where the rows have {size}"),
    };
    let values = match a.data_type() {
        DataType::FixedSizeList(..) => {
            let list = a.as_fixed_size_list();
            if list.value_length().max(0) as usize != size {
                return Err(wrong(0, list.value_length().max(0) as usize));
            }
            list.values().slice(list.offset() * size, n * size)
        }
        DataType::List(_) => equal_lists(a.as_list::<i32>(), size, wrong)?,
        DataType::LargeList(_) => equal_lists(a.as_list::<i64>(), size, wrong)?,
        t => {
            return Err(Error::Schema(format!(
                "column '{name}' has type {t}, not a list of numbers"
            )))
        }
    };
    Ok(values)
}

/// The values of lists that all hold `size` values, contiguous from the first.
fn equal_lists<O: OffsetSizeTrait>(
    list: &arrow_array::GenericListArray<O>,
    size: usize,
    wrong: impl Fn(usize, usize) -> Error,
) -> Result<ArrayRef> {
    let offsets = list.value_offsets();
    for (i, w) in offsets.windows(2).enumerate() {
        let len = (w[1] - w[0]).as_usize();
        if len != size {
            return Err(wrong(i, len));
        }
    }
    let start = offsets.first().map_or(0, |o| o.as_usize());
    Ok(list.values().slice(start, list.len() * size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::types::Float64Type;
    use arrow_array::{Float64Array, ListArray};
    use arrow_schema::Field;

    fn lists(rows: &[Option<Vec<f64>>]) -> ArrayRef {
        let it = rows
            .iter()
            .map(|r| r.as_ref().map(|v| v.iter().map(|&x| Some(x))));
        Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(it))
    }

    fn floats(a: &ArrayRef) -> Vec<f64> {
        let a = a.as_any().downcast_ref::<Float64Array>().unwrap();
        a.values().to_vec()
    }

    /// Lists of the row width give their values in row order, also from a slice of the
    /// array; a row of another length is named, from the batch's first row.
    #[test]
    fn equal_lists_give_rows_and_others_are_named() {
        let a = lists(&[
            Some(vec![1.0, 2.0]),
            Some(vec![3.0, 4.0]),
            Some(vec![5.0, 6.0]),
        ]);
        assert_eq!(
            floats(&row_values(&a, 2, "v", 0).unwrap()),
            [1., 2., 3., 4., 5., 6.]
        );
        let tail = a.slice(1, 2);
        assert_eq!(
            floats(&row_values(&tail, 2, "v", 0).unwrap()),
            [3., 4., 5., 6.]
        );
        let bad = lists(&[Some(vec![1.0, 2.0]), Some(vec![3.0])]);
        let e = row_values(&bad, 2, "v", 100).unwrap_err().to_string();
        assert!(
            e.contains("row 101") && e.contains("'v'") && e.contains("list of 1"),
            "{e}"
        );
    }

    /// A dense layout reads a list column when `--columns` names it alone, or when it is
    /// the only feature-like column.
    #[test]
    fn which_list_column_a_dense_layout_reads() {
        let list = DataType::List(Arc::new(Field::new("item", DataType::Float32, true)));
        let schema = |extra: Option<DataType>| {
            let mut f = vec![
                Field::new("id", DataType::Int64, false),
                Field::new("emb", list.clone(), true),
                Field::new("name", DataType::Utf8, true),
            ];
            if let Some(t) = extra {
                f.push(Field::new("x", t, false));
            }
            Schema::new(f)
        };
        let opts = InputOptions::new(10).id_column("id");
        assert_eq!(list_column(&schema(None), &opts).as_deref(), Some("emb"));
        let words = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert_eq!(
            list_column(&schema(Some(words)), &opts).as_deref(),
            Some("emb")
        );
        let codes = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Float32));
        assert_eq!(list_column(&schema(Some(codes)), &opts), None);
        assert_eq!(list_column(&schema(Some(DataType::Float64)), &opts), None);
        let named = InputOptions::new(10).columns(vec!["emb".into()]);
        let s = schema(Some(DataType::Float64));
        assert_eq!(list_column(&s, &named).as_deref(), Some("emb"));
        let x = InputOptions::new(10).columns(vec!["x".into()]);
        assert_eq!(list_column(&s, &x), None);
    }
}
