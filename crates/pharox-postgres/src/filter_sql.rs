//! Filters as an SQL condition for `pharox_pick` (migrations/0002).
//!
//! The condition is built from a fixed grammar: column names of the alias
//! `p`, operators, and placeholders. Every value travels separately, strings
//! in `$2` (`text[]`) and numbers in `$3` (`float8[]`), so no input reaches
//! the SQL text. The top level's equality terms compare plainly, so the
//! planner can use the partial indexes by country, source, city, isp, asn
//! and latitude; nested terms are made two-valued (`coalesce(…, false)`) so
//! `none_of` negates exactly as the reference evaluator does for proxies
//! missing a field.

use pharox_core::filter::EARTH_RADIUS_KM;
use pharox_core::{GeoRadius, ProxyFilters};

/// A filter ready for `pharox_pick`: the condition (`None`: no filter) and
/// the values it refers to.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FilterSql {
    /// The condition on `p`, or `None` for no filter.
    pub(crate) condition: Option<String>,
    /// The strings, `$2[1]`, `$2[2]`, …
    pub(crate) texts: Vec<String>,
    /// The numbers, `$3[1]`, `$3[2]`, …
    pub(crate) nums: Vec<f64>,
}

impl FilterSql {
    /// Builds the condition of `filters` (already validated, no predicate).
    pub(crate) fn of(filters: &ProxyFilters) -> Self {
        let mut out = Self::default();
        if !filters.is_empty() {
            let condition = out.node(filters, false);
            out.condition = Some(condition);
        }
        out
    }

    fn text(&mut self, value: &str) -> String {
        self.texts.push(value.to_owned());
        format!("$2[{}]", self.texts.len())
    }

    fn num(&mut self, value: f64) -> String {
        self.nums.push(value);
        format!("$3[{}]", self.nums.len())
    }

    fn leaf(nested: bool, term: String) -> String {
        if nested {
            format!("coalesce({term}, false)")
        } else {
            term
        }
    }

    fn node(&mut self, f: &ProxyFilters, nested: bool) -> String {
        let mut terms = Vec::new();
        if let Some(country) = &f.country {
            let v = self.text(&country.to_ascii_lowercase());
            terms.push(Self::leaf(nested, format!("p.country_key = {v}")));
        }
        for (column, value) in [("source", &f.source), ("city", &f.city), ("isp", &f.isp)] {
            if let Some(value) = value {
                let v = self.text(value);
                terms.push(Self::leaf(nested, format!("p.{column} = {v}")));
            }
        }
        if let Some(asn) = f.asn {
            let v = self.num(f64::from(asn));
            terms.push(Self::leaf(nested, format!("p.asn = ({v})::bigint")));
        }
        if let Some(geo) = &f.geo {
            let term = self.geo(geo);
            terms.push(Self::leaf(nested, term));
        }
        for child in &f.all_of {
            terms.push(self.child(child));
        }
        if !f.any_of.is_empty() {
            let any: Vec<String> = f.any_of.iter().map(|c| self.child(c)).collect();
            terms.push(format!("({})", any.join(" OR ")));
        }
        if !f.none_of.is_empty() {
            let none: Vec<String> = f.none_of.iter().map(|c| self.child(c)).collect();
            terms.push(format!("NOT ({})", none.join(" OR ")));
        }
        if terms.is_empty() {
            "true".to_owned()
        } else {
            terms.join(" AND ")
        }
    }

    fn child(&mut self, f: &ProxyFilters) -> String {
        format!("({})", self.node(f, true))
    }

    /// A latitude band the index can range over (a superset of the circle,
    /// with a margin for rounding), then the exact distance.
    fn geo(&mut self, geo: &GeoRadius) -> String {
        let band = (geo.radius_km / EARTH_RADIUS_KM).to_degrees() * 1.000_001 + 1e-9;
        let lo = self.num(geo.latitude - band);
        let hi = self.num(geo.latitude + band);
        let lat = self.num(geo.latitude);
        let lon = self.num(geo.longitude);
        let r = self.num(geo.radius_km);
        format!(
            "(p.latitude BETWEEN {lo} AND {hi} \
             AND pharox_haversine_km({lat}, {lon}, p.latitude, p.longitude) <= {r})"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_filter_is_no_condition() {
        assert_eq!(FilterSql::of(&ProxyFilters::new()), FilterSql::default());
    }

    #[test]
    fn values_travel_apart_from_the_sql() {
        let f = ProxyFilters::new()
            .country("AR'; DROP TABLE x; --")
            .none_of([ProxyFilters::new().isp("Evil")]);
        let sql = FilterSql::of(&f);
        let condition = sql.condition.unwrap();
        assert_eq!(
            condition,
            "p.country_key = $2[1] AND NOT ((coalesce(p.isp = $2[2], false)))"
        );
        assert_eq!(sql.texts, ["ar'; drop table x; --", "Evil"]);
    }
}
