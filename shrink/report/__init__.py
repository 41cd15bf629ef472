"""Human and machine reports: report.md, report.html, JUnit XML and the `inspect` view."""
