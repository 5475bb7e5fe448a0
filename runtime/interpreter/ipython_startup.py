# Run in every Python context when its kernel starts (IPKernelApp.exec_files):
# a DataFrame result also carries its columns as `e2b/data` (Result.data in
# the SDK), as E2B's interpreter does. Leaves no names behind.
def _sandboxd_setup():
    import sys
    import IPython
    from IPython.core.formatters import BaseFormatter
    from traitlets import ObjectName, Unicode

    class DataFrameColumns(BaseFormatter):
        format_type = Unicode("e2b/data")
        print_method = ObjectName("_repr_e2b_data_")
        _return_type = (dict, str)

        def __call__(self, obj):
            # Only a DataFrame, and without importing pandas for other results.
            pandas = sys.modules.get("pandas")
            if pandas is None or not isinstance(obj, pandas.DataFrame):
                return super().__call__(obj)
            columns = obj.to_dict(orient="list")
            return {str(k): [v.isoformat() if isinstance(v, pandas.Timestamp) else v for v in vals]
                    for k, vals in columns.items()}

    shell = IPython.get_ipython()
    if shell is not None:
        formatter = DataFrameColumns(parent=shell.display_formatter)
        shell.display_formatter.formatters["e2b/data"] = formatter


_sandboxd_setup()
del _sandboxd_setup
