"""plots-template: the page `dvc plots show` fills (.dvc/config plots.html_template), with
Vega, Vega-Lite and Vega-Embed inlined from the vl-convert-python wheel, so it renders offline."""
from badnet_repair import artifacts, report
from badnet_repair.atomic import write_text
from badnet_repair.errors import cli


@cli
def main():
    versions = report.bundle_versions()
    write_text(artifacts.PLOTS_TEMPLATE, report.plots_template(report.vega_bundle(), versions))
    print(f"{artifacts.PLOTS_TEMPLATE}: {versions}")


if __name__ == "__main__":
    main()
