// placeholder: implemented by its issue-2 work item
