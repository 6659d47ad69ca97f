"""The Gradio front end's parts below app.py: component groups (panels), pure value mappers that
return `{component: value}` dicts, the handlers that call the studio service, the documented API
endpoints, and the browser driver behind the screenshots command."""
